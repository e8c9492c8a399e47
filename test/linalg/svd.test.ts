import { describe, expect, it } from 'vitest';
import { lowRankSvd, svd, truncateSvd } from '../../src/linalg/svd.js';
import { LinalgError } from '../../src/linalg/errors.js';
import { frobenius, maxAbsDiff, naiveMul, orthonormalityError, randomMatrix, reconstruct } from './helpers.js';

function expectValidSvd(a: ArrayLike<number>, m: number, n: number, tol: number): ReturnType<typeof svd> {
  const f = svd(Float64Array.from(a), m, n);
  const k = Math.min(m, n);
  expect([f.u.rows, f.u.cols, f.v.rows, f.v.cols, f.s.length]).toEqual([m, k, n, k, k]);
  expect(maxAbsDiff(reconstruct(f.u.data, f.s, f.v.data, m, n, k), a)).toBeLessThan(tol);
  expect(orthonormalityError(f.u.data, m, k)).toBeLessThan(1e-12);
  expect(orthonormalityError(f.v.data, n, k)).toBeLessThan(1e-12);
  for (let i = 1; i < k; i++) expect(f.s[i]!).toBeLessThanOrEqual(f.s[i - 1]!);
  for (const s of f.s) expect(s).toBeGreaterThanOrEqual(0);
  return f;
}

describe('svd', () => {
  it.each([
    [9, 4],
    [4, 9],
    [6, 6],
    [1, 5],
    [5, 1],
    [40, 25],
  ])('svd – reconstructs a random %i×%i matrix with orthonormal U, V and descending S', (m, n) => {
    expectValidSvd(randomMatrix(m, n, `svd-${m}-${n}`), m, n, 1e-12);
  });

  it('svd – recovers known singular values of U·diag(s)·Vᵀ', () => {
    // Prepare: orthonormal factors from QR-free construction: a rotation block and a permutation
    const c = Math.cos(0.3);
    const s = Math.sin(0.3);
    const u = [c, -s, 0, s, c, 0, 0, 0, 1]; // 3×3
    const v = [0, 1, 0, 0, 0, 1, 1, 0, 0]; // 3×3 permutation
    const a = reconstruct(u, [5, 2, 0.5], v, 3, 3, 3);
    // Execute
    const f = expectValidSvd(a, 3, 3, 1e-14);
    // Assert
    expect(maxAbsDiff(f.s, [5, 2, 0.5])).toBeLessThan(1e-14);
  });

  it('svd – handles a rank-deficient matrix: zero tail singular values, still orthonormal factors', () => {
    // Prepare: 8×6 of rank 2
    const a = naiveMul(randomMatrix(8, 2, 'l'), randomMatrix(2, 6, 'r'), 8, 2, 6);
    // Execute
    const f = expectValidSvd(a, 8, 6, 1e-13);
    // Assert
    expect(f.s[1]!).toBeGreaterThan(1e-3);
    for (let i = 2; i < 6; i++) expect(f.s[i]!).toBeLessThan(1e-13);
  });

  it('svd – factors the zero matrix into S = 0 with orthonormal U and V', () => {
    const f = expectValidSvd(new Float64Array(12), 4, 3, 1e-300);
    expect([...f.s]).toEqual([0, 0, 0]);
  });

  it('svd – accepts float32 input and computes in float64', () => {
    const a = Float32Array.from(randomMatrix(5, 3, 'f32'));
    const f = svd(a, 5, 3);
    expect(maxAbsDiff(reconstruct(f.u.data, f.s, f.v.data, 5, 3, 3), a)).toBeLessThan(1e-13);
  });

  it('svd – keeps relative accuracy over a wide range of singular values', () => {
    // Prepare: diagonal scaling from 1 down to 1e-12 mixed by orthonormal factors from an earlier SVD
    const q = svd(randomMatrix(6, 6, 'mix'), 6, 6);
    const sigma = [1, 1e-2, 1e-4, 1e-6, 1e-9, 1e-12];
    const a = reconstruct(q.u.data, sigma, q.v.data, 6, 6, 6);
    // Execute
    const f = svd(a, 6, 6);
    // Assert: the small values keep many digits although the spread is 1e12
    for (let i = 0; i < 4; i++) expect(Math.abs(f.s[i]! - sigma[i]!) / sigma[i]!).toBeLessThan(1e-8);
  });

  it('svd – rejects NaN input with a named error', () => {
    const a = randomMatrix(3, 3, 'nan');
    a[4] = Number.NaN;
    expect(() => svd(a, 3, 3)).toThrow(LinalgError);
  });

  it('truncateSvd – keeps the leading triplets, the best rank-r approximation (Eckart–Young)', () => {
    // Prepare
    const m = 10;
    const n = 7;
    const a = randomMatrix(m, n, 'trunc');
    const f = svd(a, m, n);
    // Execute
    const t = truncateSvd(f, 3);
    // Assert: ‖A − A_3‖_F² equals the sum of the discarded σ²
    const approx = reconstruct(t.u.data, t.s, t.v.data, m, n, 3);
    const residual = frobenius(a.map((x, i) => x - approx[i]!));
    const tail = Math.sqrt([...f.s].slice(3).reduce((acc, s) => acc + s * s, 0));
    expect(residual).toBeCloseTo(tail, 12);
    expect(truncateSvd(f, 99).s.length).toBe(7);
  });
});

describe('lowRankSvd', () => {
  it.each([
    [30, 4, 20],
    [5, 8, 12],
    [12, 8, 5],
    [16, 3, 16],
  ])('lowRankSvd – agrees with the full SVD of the dense product B·A (dOut %i, r %i, dIn %i)', (dOut, r, dIn) => {
    // Prepare
    const b = randomMatrix(dOut, r, `b${dOut}${r}`);
    const a = randomMatrix(r, dIn, `a${r}${dIn}`);
    const dense = naiveMul(b, a, dOut, r, dIn);
    const k = Math.min(dOut, r, dIn);
    // Execute
    const low = lowRankSvd(b, a, dOut, r, dIn);
    const full = svd(dense, dOut, dIn);
    // Assert
    expect(low.s.length).toBe(k);
    expect(maxAbsDiff(low.s, full.s.slice(0, k))).toBeLessThan(1e-12);
    expect(maxAbsDiff(reconstruct(low.u.data, low.s, low.v.data, dOut, dIn, k), dense)).toBeLessThan(1e-12);
    expect(orthonormalityError(low.u.data, dOut, k)).toBeLessThan(1e-12);
    expect(orthonormalityError(low.v.data, dIn, k)).toBeLessThan(1e-12);
  });

  it('lowRankSvd – with a rank keeps the leading triplets and reports the dropped singular values', () => {
    // Prepare
    const b = randomMatrix(20, 6, 'tb');
    const a = randomMatrix(6, 15, 'ta');
    const full = svd(naiveMul(b, a, 20, 6, 15), 20, 15);
    // Execute
    const top = lowRankSvd(b, a, 20, 6, 15, 2);
    // Assert
    expect([top.u.cols, top.v.cols, top.s.length, top.tail.length]).toEqual([2, 2, 2, 4]);
    expect(maxAbsDiff(top.s, full.s.slice(0, 2))).toBeLessThan(1e-12);
    expect(maxAbsDiff(top.tail, full.s.slice(2, 6))).toBeLessThan(1e-12);
    expect(orthonormalityError(top.u.data, 20, 2)).toBeLessThan(1e-12);
    const best = truncateSvd(full, 2);
    const approx = reconstruct(top.u.data, top.s, top.v.data, 20, 15, 2);
    expect(maxAbsDiff(approx, reconstruct(best.u.data, best.s, best.v.data, 20, 15, 2))).toBeLessThan(1e-12);
  });

  it('lowRankSvd – a product of rank below r has zero trailing singular values', () => {
    // Prepare: B has two identical columns, so rank(B·A) ≤ 2 with r = 3
    const b = randomMatrix(10, 3, 'dup');
    for (let i = 0; i < 10; i++) b[i * 3 + 2] = b[i * 3]!;
    const a = randomMatrix(3, 9, 'dupA');
    // Execute
    const f = lowRankSvd(b, a, 10, 3, 9);
    // Assert
    expect(f.s[2]!).toBeLessThan(1e-13);
    expect(maxAbsDiff(reconstruct(f.u.data, f.s, f.v.data, 10, 9, 3), naiveMul(b, a, 10, 3, 9))).toBeLessThan(1e-13);
  });

  it('lowRankSvd – rejects factors whose sizes do not match the stated shape', () => {
    expect(() => lowRankSvd(new Float64Array(6), new Float64Array(6), 3, 2, 4)).toThrow(/A 2×4/);
  });
});
