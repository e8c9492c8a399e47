/** Independent, naive reference arithmetic for checking src/linalg (deliberately not reusing its code). */
import seedrandom from 'seedrandom';

export function randomMatrix(rows: number, cols: number, seed: string): Float64Array {
  const rng = seedrandom(seed);
  return Float64Array.from({ length: rows * cols }, () => rng() * 2 - 1);
}

/** Row-major (m×p)·(p×n) by the textbook triple loop. */
export function naiveMul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, p: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += a[i * p + k]! * b[k * n + j]!;
      out[i * n + j] = s;
    }
  }
  return out;
}

export function naiveTranspose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j]!;
  return out;
}

/** U·diag(s)·Vᵀ with U m×k, V n×k. */
export function reconstruct(u: ArrayLike<number>, s: ArrayLike<number>, v: ArrayLike<number>, m: number, n: number, k: number): Float64Array {
  const us = Float64Array.from({ length: m * k }, (_, idx) => u[idx]! * s[idx % k]!);
  return naiveMul(us, naiveTranspose(v, n, k), m, k, n);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

export function frobenius(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

/** max |XᵀX − I| for X m×k row-major. */
export function orthonormalityError(x: ArrayLike<number>, m: number, k: number): number {
  const xtx = naiveMul(naiveTranspose(x, m, k), x, k, m, k);
  let e = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) e = Math.max(e, Math.abs(xtx[i * k + j]! - (i === j ? 1 : 0)));
  return e;
}
