/**
 * Thin singular value decomposition M = U·diag(S)·Vᵀ of dense matrices, and of low-rank products B·A without forming
 * them. Used by `exact` LoRA aggregation (ALGORITHMS.md §1) to re-factor Σ w_k B_k A_k to rank r, and by the ESSA
 * trainer (§5) to factor ΔW = B·A = U diag(s) Vᵀ.
 *
 * Method: Householder QR first, then one-sided (Hestenes) Jacobi on the small square R factor (Drmač & Veselić 2008,
 * "New fast and accurate Jacobi SVD algorithm I", §2: QR preconditioning speeds Jacobi up and keeps its accuracy).
 * One-sided Jacobi stops only when every pair of columns is orthogonal to working precision relative to the columns'
 * norms, so left singular vectors stay orthonormal even for tiny singular values; it is O(n³) per sweep and usually
 * needs 5–10 sweeps, fine for the n ≤ a few hundred that aggregation produces.
 *
 * Layouts: inputs and outputs are row-major; U is m×k, V is n×k, S has k values in descending order, k = min(m, n).
 * Singular vectors of zero singular values are completed to an orthonormal set, so UᵀU = VᵀV = I always.
 */
import { LinalgError } from './errors.js';
import { allFinite, matrix, multiplyTransposed, transpose, type Dense, type Matrix } from './matrix.js';
import { householder } from './qr.js';

export interface Svd {
  /** m×k, orthonormal columns (left singular vectors). */
  readonly u: Matrix;
  /** k singular values, descending, ≥ 0. */
  readonly s: Float64Array;
  /** n×k, orthonormal columns (right singular vectors). */
  readonly v: Matrix;
}

/** Sweeps allowed before giving up; convergence is quadratic, so hitting this means non-finite or pathological input. */
const MAX_SWEEPS = 60;

/** Thin SVD of a row-major m×n matrix (float32 or float64), computed in float64. */
export function svd(data: Dense, rows: number, cols: number): Svd {
  const a = matrix(data, rows, cols);
  if (!allFinite(a.data)) throw new LinalgError('cannot take the SVD of a matrix with NaN or ±Infinity', 'non_finite');
  if (rows < cols) {
    const t = svdTall(transpose(a));
    return { u: t.v, s: t.s, v: t.u };
  }
  return svdTall(a);
}

/** A truncated SVD that also reports the singular values it dropped. */
export interface LowRankSvd extends Svd {
  /** The singular values beyond the kept ones, descending (empty when nothing was dropped). */
  readonly tail: Float64Array;
}

/**
 * SVD of the product B·A (B: dOut×r, A: r×dIn, both row-major) in O((dOut + dIn)·r²): QR of B and of Aᵀ, then the
 * SVD of the small core R_B·R_Aᵀ. B·A = Q_B (R_B R_Aᵀ) Q_Aᵀ = (Q_B U_c) S (Q_A V_c)ᵀ. The dOut×dIn product is never
 * formed, and Q_B, Q_A are applied in Householder form to the `rank` kept vectors only. k = min(dOut, r, dIn) singular
 * values exist; the leading min(rank, k) are returned with their vectors and the rest in `tail`.
 */
export function lowRankSvd(b: Dense, a: Dense, dOut: number, r: number, dIn: number, rank = Number.POSITIVE_INFINITY): LowRankSvd {
  if (b.length !== dOut * r || a.length !== r * dIn) {
    throw new LinalgError(
      `lowRankSvd needs B ${dOut}×${r} (${dOut * r} values) and A ${r}×${dIn} (${r * dIn} values), ` +
        `got ${b.length} and ${a.length}`,
      'bad_shape',
    );
  }
  if (!allFinite(b)) throw new LinalgError('B holds NaN or ±Infinity', 'non_finite');
  if (!allFinite(a)) throw new LinalgError('A holds NaN or ±Infinity', 'non_finite');
  const hb = householder(b, dOut, r, 'row-major');
  const ha = householder(a, dIn, r, 'column-major'); // row-major A (r×dIn) is Aᵀ (dIn×r) in column-major
  const core = multiplyTransposed(hb.r, ha.r); // kB×kA
  const full = svd(core.data, core.rows, core.cols);
  const c = truncateSvd(full, rank);
  return { u: hb.applyQ(c.u), s: c.s, v: ha.applyQ(c.v), tail: full.s.slice(c.s.length) };
}

/** The leading `rank` singular triplets (all of them when rank ≥ k). */
export function truncateSvd(full: Svd, rank: number): Svd {
  if (!(rank >= 0) || (!Number.isInteger(rank) && rank !== Number.POSITIVE_INFINITY)) {
    throw new LinalgError(`rank must be a non-negative integer (or Infinity for all), got ${rank}`, 'bad_shape');
  }
  const k = Math.min(rank, full.s.length);
  return { u: leadingColumns(full.u, k), s: full.s.slice(0, k), v: leadingColumns(full.v, k) };
}

function leadingColumns(a: Matrix, k: number): Matrix {
  if (k === a.cols) return a;
  const out = new Float64Array(a.rows * k);
  for (let i = 0; i < a.rows; i++) out.set(a.data.subarray(i * a.cols, i * a.cols + k), i * k);
  return { rows: a.rows, cols: k, data: out };
}

/** m ≥ n: M = Q R, R = U_R S Vᵀ, so U = Q U_R (Q applied in Householder form). */
function svdTall(a: Matrix): Svd {
  const h = householder(a.data, a.rows, a.cols, 'row-major');
  const j = jacobiSquare(h.r);
  return { u: h.applyQ(j.u), s: j.s, v: j.v };
}

/**
 * One-sided Jacobi on a square n×n matrix: rotate column pairs (and the same pairs of V, starting from I) until all
 * columns are mutually orthogonal; then column norms are the singular values and normalised columns are U.
 */
function jacobiSquare(r: Matrix): Svd {
  const n = r.rows;
  // Scale to max |x| = 1 so squared norms neither overflow nor underflow; singular values are scaled back at the end.
  let scale = 0;
  for (const x of r.data) scale = Math.max(scale, Math.abs(x));
  if (scale === 0) scale = 1;
  const g = new Float64Array(n * n); // column-major: column j at j*n
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) g[j * n + i] = r.data[i * n + j]! / scale;
  }
  const v = new Float64Array(n * n);
  for (let j = 0; j < n; j++) v[j * n + j] = 1;

  const tol = Number.EPSILON * Math.max(n, 4);
  let converged = n < 2;
  for (let sweep = 0; sweep < MAX_SWEEPS && !converged; sweep++) {
    converged = true;
    for (let p = 0; p < n - 1; p++) {
      const po = p * n;
      for (let qc = p + 1; qc < n; qc++) {
        const qo = qc * n;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < n; i++) {
          const x = g[po + i]!;
          const y = g[qo + i]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (alpha === 0 || beta === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        converged = false;
        const zeta = (beta - alpha) / (2 * gamma);
        // The smaller root of t² + 2ζt − 1 = 0 (rotation angle ≤ π/4); 1/(2ζ) when ζ² would overflow.
        const t = Math.abs(zeta) > 1e150 ? 0.5 / zeta : (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(g, po, qo, c, s, n);
        rotate(v, po, qo, c, s, n);
      }
    }
  }
  if (!converged) throw new LinalgError(`Jacobi SVD did not converge in ${MAX_SWEEPS} sweeps (n = ${n})`, 'no_convergence');

  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += g[j * n + i]! ** 2;
    norms[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: n }, (_, j) => j).sort((x, y) => norms[y]! - norms[x]!);
  const u = new Float64Array(n * n); // row-major
  const vOut = new Float64Array(n * n);
  const sv = new Float64Array(n);
  const zeroCols: number[] = [];
  order.forEach((src, dst) => {
    const sigma = norms[src]!;
    sv[dst] = sigma * scale;
    for (let i = 0; i < n; i++) vOut[i * n + dst] = v[src * n + i]!;
    if (sigma === 0) zeroCols.push(dst);
    else for (let i = 0; i < n; i++) u[i * n + dst] = g[src * n + i]! / sigma;
  });
  completeOrthonormal(u, n, zeroCols);
  return { u: { rows: n, cols: n, data: u }, s: sv, v: { rows: n, cols: n, data: vOut } };
}

/** Plane rotation of columns p and q: x_p ← c x_p − s x_q, x_q ← s x_p + c x_q. */
function rotate(x: Float64Array, po: number, qo: number, c: number, s: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const a = x[po + i]!;
    const b = x[qo + i]!;
    x[po + i] = c * a - s * b;
    x[qo + i] = s * a + c * b;
  }
}

/**
 * Fills the listed columns of a row-major n×n matrix (currently zero) with unit vectors orthogonal to all other
 * columns: Gram–Schmidt, done twice ("twice is enough", Parlett), on standard basis vectors. The projections of all e_i
 * onto the missing subspace have squared lengths summing to its dimension c, so the best candidate keeps at least
 * √(c/n) of its length; we take the first keeping ½ or else the best.
 */
function completeOrthonormal(u: Float64Array, n: number, cols: readonly number[]): void {
  const filled = Array.from({ length: n }, (_, j) => j).filter((j) => !cols.includes(j));
  for (const col of cols) {
    let best: Float64Array | undefined;
    let bestNorm = 0;
    for (let e = 0; e < n && bestNorm < 0.5; e++) {
      const x = new Float64Array(n);
      x[e] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (const j of filled) {
          let d = 0;
          for (let i = 0; i < n; i++) d += u[i * n + j]! * x[i]!;
          for (let i = 0; i < n; i++) x[i]! -= d * u[i * n + j]!;
        }
      }
      const norm = Math.sqrt(x.reduce((acc, y) => acc + y * y, 0));
      if (norm > bestNorm) [best, bestNorm] = [x, norm];
    }
    for (let i = 0; i < n; i++) u[i * n + col] = best![i]! / bestNorm;
    filled.push(col);
  }
}
