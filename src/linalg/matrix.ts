/**
 * Dense row-major matrices in float64, the working currency of src/linalg. Inputs may be float32 (adapter tensors) or
 * float64; everything is computed in float64 so that QR and SVD keep their accuracy on float32 data.
 */
import { LinalgError } from './errors.js';

/** A dense row-major matrix: element (i, j) is `data[i * cols + j]`. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

/** Float32 or float64 row-major values. */
export type Dense = Float32Array | Float64Array;

/** Wraps (or copies, for float32 input) row-major values as a float64 Matrix after checking the size. */
export function matrix(data: Dense, rows: number, cols: number): Matrix {
  checkDims(rows, cols);
  if (data.length !== rows * cols) {
    throw new LinalgError(`matrix data has ${data.length} values but ${rows}×${cols} needs ${rows * cols}`, 'bad_shape');
  }
  return { rows, cols, data: data instanceof Float64Array ? data : Float64Array.from(data) };
}

export function zeros(rows: number, cols: number): Matrix {
  checkDims(rows, cols);
  return { rows, cols, data: new Float64Array(rows * cols) };
}

export function transpose(a: Matrix): Matrix {
  const out = new Float64Array(a.rows * a.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < a.cols; j++) out[j * a.rows + i] = a.data[i * a.cols + j]!;
  }
  return { rows: a.cols, cols: a.rows, data: out };
}

/** a·b, (m×p)·(p×n) → m×n. The i-k-j loop order streams rows of b and of the output. */
export function multiply(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) {
    throw new LinalgError(`cannot multiply ${a.rows}×${a.cols} by ${b.rows}×${b.cols}: inner sizes differ`, 'bad_shape');
  }
  const { rows: m, cols: p } = a;
  const n = b.cols;
  const out = new Float64Array(m * n);
  const ad = a.data;
  const bd = b.data;
  for (let i = 0; i < m; i++) {
    const o = i * n;
    for (let k = 0; k < p; k++) {
      const aik = ad[i * p + k]!;
      if (aik === 0) continue;
      const bo = k * n;
      for (let j = 0; j < n; j++) out[o + j]! += aik * bd[bo + j]!;
    }
  }
  return { rows: m, cols: n, data: out };
}

/** a·bᵀ, (m×p)·(n×p)ᵀ → m×n, as dot products of rows (both operands read contiguously). */
export function multiplyTransposed(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.cols) {
    throw new LinalgError(`cannot multiply ${a.rows}×${a.cols} by (${b.rows}×${b.cols})ᵀ: inner sizes differ`, 'bad_shape');
  }
  const p = a.cols;
  const out = new Float64Array(a.rows * b.rows);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < b.rows; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += a.data[i * p + k]! * b.data[j * p + k]!;
      out[i * b.rows + j] = s;
    }
  }
  return { rows: a.rows, cols: b.rows, data: out };
}

/** Frobenius norm, scaled to avoid overflow and underflow on extreme values. */
export function frobeniusNorm(a: Matrix): number {
  let scale = 0;
  for (const x of a.data) scale = Math.max(scale, Math.abs(x));
  if (scale === 0 || !Number.isFinite(scale)) return scale;
  let s = 0;
  for (const x of a.data) s += (x / scale) ** 2;
  return scale * Math.sqrt(s);
}

/** True when every value is finite (x − x is 0 for finite x, NaN otherwise). */
export function allFinite(data: Dense): boolean {
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (x - x !== 0) return false;
  }
  return true;
}

function checkDims(rows: number, cols: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new LinalgError(`matrix dimensions must be non-negative integers, got ${rows}×${cols}`, 'bad_shape');
  }
}
