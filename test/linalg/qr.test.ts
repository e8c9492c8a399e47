import { describe, expect, it } from 'vitest';
import { qr, qrColumnMajor } from '../../src/linalg/qr.js';
import { LinalgError } from '../../src/linalg/errors.js';
import { maxAbsDiff, naiveMul, orthonormalityError, randomMatrix } from './helpers.js';

describe('qr', () => {
  it.each([
    [7, 3],
    [3, 7],
    [5, 5],
    [1, 4],
    [4, 1],
  ])('qr – factors a %i×%i matrix into orthonormal Q and upper-triangular R', (m, n) => {
    // Prepare
    const a = randomMatrix(m, n, `qr-${m}-${n}`);
    const k = Math.min(m, n);
    // Execute
    const { q, r } = qr(a, m, n);
    // Assert
    expect([q.rows, q.cols, r.rows, r.cols]).toEqual([m, k, k, n]);
    expect(maxAbsDiff(naiveMul(q.data, r.data, m, k, n), a)).toBeLessThan(1e-13);
    expect(orthonormalityError(q.data, m, k)).toBeLessThan(1e-13);
    for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) expect(r.data[i * n + j]).toBe(0);
  });

  it('qr – keeps Q orthonormal for a rank-deficient matrix with a zero column', () => {
    // Prepare: column 1 is zero and column 2 duplicates column 0
    const m = 6;
    const base = randomMatrix(m, 1, 'rd');
    const a = new Float64Array(m * 3);
    for (let i = 0; i < m; i++) [a[i * 3], a[i * 3 + 2]] = [base[i]!, base[i]!];
    // Execute
    const { q, r } = qr(a, m, 3);
    // Assert
    expect(orthonormalityError(q.data, m, 3)).toBeLessThan(1e-13);
    expect(maxAbsDiff(naiveMul(q.data, r.data, m, 3, 3), a)).toBeLessThan(1e-13);
  });

  it('qr – column-major input of a row-major r×d matrix factors its transpose', () => {
    // Prepare: A is 2×5 row-major, i.e. Aᵀ (5×2) column-major
    const a = randomMatrix(2, 5, 'cm');
    const at = new Float64Array(10);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 5; j++) at[j * 2 + i] = a[i * 5 + j]!;
    // Execute
    const viaColumns = qrColumnMajor(a, 5, 2);
    // Assert
    expect(maxAbsDiff(naiveMul(viaColumns.q.data, viaColumns.r.data, 5, 2, 2), at)).toBeLessThan(1e-13);
  });

  it('qr – rejects data whose length does not match the shape', () => {
    expect(() => qr(new Float64Array(5), 2, 3)).toThrow(LinalgError);
  });
});
