/**
 * Thin QR by Householder reflections (Golub & Van Loan, Matrix Computations, 4th ed., §5.2.2). Householder QR gives a
 * Q that is orthonormal to working precision whatever the rank of the input, which Gram–Schmidt does not; the SVD
 * (svd.ts) relies on that for rank-deficient adapter products.
 *
 * The factorisation works on columns, so it takes a column-major buffer: column j of an m×n matrix is
 * `data[j*m .. j*m+m)`. A row-major r×d matrix (a LoRA `lora_A`) is exactly its transpose (d×r) in column-major, so
 * QR of Aᵀ needs no copy.
 */
import { LinalgError } from './errors.js';
import { matrix, type Dense, type Matrix } from './matrix.js';

/** M = Q·R with Q (m×k) orthonormal columns, R (k×n) upper triangular, k = min(m, n). Both row-major. */
export interface QR {
  readonly q: Matrix;
  readonly r: Matrix;
}

/**
 * A QR factorisation kept in Householder form: R explicitly, Q as its k reflectors. Applying Q to a few columns
 * costs O(m·k) per column, so a caller that needs Q·X for a thin X (e.g. the top-r singular vectors) never pays the
 * O(m·k²) of forming Q.
 */
export interface Householder {
  readonly rows: number;
  readonly cols: number;
  /** k×n upper triangular, row-major. */
  readonly r: Matrix;
  /** Q·X for X (k×c, row-major) → m×c, row-major. */
  applyQ(x: Matrix): Matrix;
}

/** Thin QR of a row-major m×n matrix, with Q formed explicitly. */
export function qr(data: Dense, rows: number, cols: number): QR {
  const h = householder(data, rows, cols, 'row-major');
  return { q: h.applyQ(identity(Math.min(rows, cols))), r: h.r };
}

/** Thin QR of an m×n matrix given column-major (e.g. a row-major r×d lora_A read as its d×r transpose). */
export function qrColumnMajor(data: Dense, rows: number, cols: number): QR {
  const h = householder(data, rows, cols, 'column-major');
  return { q: h.applyQ(identity(Math.min(rows, cols))), r: h.r };
}

/** Householder QR of an m×n matrix in either layout; the input is copied, never modified. */
export function householder(data: Dense, rows: number, cols: number, layout: 'row-major' | 'column-major'): Householder {
  if (layout === 'row-major') {
    const a = matrix(data, rows, cols);
    const cm = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) cm[j * rows + i] = a.data[i * cols + j]!;
    }
    return factor(cm, rows, cols);
  }
  if (data.length !== rows * cols) {
    throw new LinalgError(`QR input has ${data.length} values but ${rows}×${cols} needs ${rows * cols}`, 'bad_shape');
  }
  return factor(Float64Array.from(data), rows, cols);
}

function identity(k: number): Matrix {
  const data = new Float64Array(k * k);
  for (let i = 0; i < k; i++) data[i * k + i] = 1;
  return { rows: k, cols: k, data };
}

/** Householder QR overwriting `cm` (column-major m×n). */
function factor(cm: Float64Array, m: number, n: number): Householder {
  const k = Math.min(m, n);
  // Reflector j is H_j = I − τ_j v_j v_jᵀ acting on rows j..m−1; v_j is kept in `vs` at offset j*m (entries j..m−1).
  const vs = new Float64Array(k * m);
  const taus = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    const c = j * m;
    let norm2 = 0;
    for (let i = j; i < m; i++) norm2 += cm[c + i]! * cm[c + i]!;
    if (norm2 === 0) continue; // column already zero below the diagonal: H_j = I
    const x0 = cm[c + j]!;
    const norm = Math.sqrt(norm2);
    const alpha = x0 >= 0 ? -norm : norm; // opposite sign to x0 avoids cancellation in v0 = x0 − alpha
    const v0 = x0 - alpha;
    const vo = j * m;
    vs[vo + j] = v0;
    for (let i = j + 1; i < m; i++) vs[vo + i] = cm[c + i]!;
    taus[j] = 2 / (norm2 - x0 * x0 + v0 * v0);
    cm[c + j] = alpha;
    for (let i = j + 1; i < m; i++) cm[c + i] = 0;
    for (let l = j + 1; l < n; l++) applyReflector(cm, l * m, vs, vo, taus[j]!, j, m);
  }
  const r = new Float64Array(k * n);
  for (let l = 0; l < n; l++) {
    const top = Math.min(l, k - 1);
    for (let i = 0; i <= top; i++) r[i * n + l] = cm[l * m + i]!;
  }

  const applyQ = (x: Matrix): Matrix => {
    if (x.rows !== k) throw new LinalgError(`Q is ${m}×${k}; cannot apply it to a ${x.rows}×${x.cols} matrix`, 'bad_shape');
    const c = x.cols;
    const y = new Float64Array(m * c); // column-major [X; 0]
    for (let i = 0; i < k; i++) {
      for (let l = 0; l < c; l++) y[l * m + i] = x.data[i * c + l]!;
    }
    // Q·Y = H_0·…·H_{k−1}·Y: apply the last reflector first.
    for (let j = k - 1; j >= 0; j--) {
      const tau = taus[j]!;
      if (tau === 0) continue;
      for (let l = 0; l < c; l++) applyReflector(y, l * m, vs, j * m, tau, j, m);
    }
    const out = new Float64Array(m * c);
    for (let l = 0; l < c; l++) {
      for (let i = 0; i < m; i++) out[i * c + l] = y[l * m + i]!;
    }
    return { rows: m, cols: c, data: out };
  };
  return { rows: m, cols: n, r: { rows: k, cols: n, data: r }, applyQ };
}

/** x ← (I − τ v vᵀ) x on rows from..m−1, where x is the column at `xo` and v the reflector at `vo`. */
function applyReflector(x: Float64Array, xo: number, v: Float64Array, vo: number, tau: number, from: number, m: number): void {
  let s = 0;
  for (let i = from; i < m; i++) s += v[vo + i]! * x[xo + i]!;
  if (s === 0) return;
  s *= tau;
  for (let i = from; i < m; i++) x[xo + i]! -= s * v[vo + i]!;
}
