/**
 * The small statistics the O3 detector and gate are built from: a Ledoit–Wolf shrinkage covariance and its inverse,
 * a ridge-regularised logistic regression, quantiles and AUROC. Pure functions on host arrays, float64 inside.
 */
import { UnlearningError } from './errors.js';

/** Column means of x [n, d]. */
export function columnMeans(x: Float32Array, n: number, d: number): Float64Array {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k]! += x[i * d + k]!;
  for (let k = 0; k < d; k++) mean[k]! /= n;
  return mean;
}

/**
 * Ledoit & Wolf (2004, "A well-conditioned estimator for large-dimensional covariance matrices", Lemma 3.2 and
 * Theorem 3.2): Σ = ρ·m·I + (1 − ρ)·S with S the sample covariance (1/n), m = tr(S)/d and the estimated optimal
 * ρ = min(b̄², d²)/d², d² = ‖S − m I‖², b̄² = (1/n²) Σ_k ‖x_k x_kᵀ − S‖² (‖·‖² = Frobenius² / d). Well-conditioned even
 * when n < d, which a forget set of a few hundred mails in 768 dimensions is. Returns Σ [d, d] and ρ.
 */
export function ledoitWolf(x: Float32Array, n: number, d: number, mean: Float64Array): { cov: Float64Array; shrinkage: number } {
  const centred = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) centred[i * d + k] = x[i * d + k]! - mean[k]!;
  const s = new Float64Array(d * d);
  for (let i = 0; i < n; i++) {
    const row = i * d;
    for (let a = 0; a < d; a++) {
      const va = centred[row + a]!;
      if (va === 0) continue;
      for (let b = a; b < d; b++) s[a * d + b]! += va * centred[row + b]!;
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      s[a * d + b]! /= n;
      s[b * d + a] = s[a * d + b]!;
    }
  }
  let trace = 0;
  for (let a = 0; a < d; a++) trace += s[a * d + a]!;
  const m = trace / d;
  let sNorm2 = 0; // ‖S‖_F²
  for (let i = 0; i < s.length; i++) sNorm2 += s[i]! * s[i]!;
  const delta2 = (sNorm2 - 2 * m * trace + m * m * d) / d; // ‖S − mI‖²
  // Σ_k ‖x_k x_kᵀ − S‖_F² = Σ_k (‖x_k‖⁴ − 2 x_kᵀ S x_k) + n‖S‖_F²
  let beta = 0;
  const sx = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const row = i * d;
    let norm2 = 0;
    for (let a = 0; a < d; a++) norm2 += centred[row + a]! * centred[row + a]!;
    sx.fill(0);
    for (let a = 0; a < d; a++) {
      const va = centred[row + a]!;
      for (let b = 0; b < d; b++) sx[b]! += s[a * d + b]! * va;
    }
    let quad = 0;
    for (let b = 0; b < d; b++) quad += sx[b]! * centred[row + b]!;
    beta += norm2 * norm2 - 2 * quad;
  }
  beta = (beta + n * sNorm2) / (n * n * d);
  const shrinkage = delta2 > 0 ? Math.min(beta, delta2) / delta2 : 1;
  const cov = new Float64Array(d * d);
  for (let i = 0; i < cov.length; i++) cov[i] = (1 - shrinkage) * s[i]!;
  for (let a = 0; a < d; a++) cov[a * d + a]! += shrinkage * m;
  return { cov, shrinkage };
}

/** The inverse of a symmetric positive-definite [d, d] matrix by Cholesky (A = L Lᵀ, A⁻¹ = L⁻ᵀ L⁻¹). */
export function spdInverse(a: Float64Array, d: number): Float64Array {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * d + j]!;
      for (let k = 0; k < j; k++) sum -= l[i * d + k]! * l[j * d + k]!;
      if (i === j) {
        if (!(sum > 0)) throw new UnlearningError('the shrinkage covariance is not positive definite (constant features?)', 'bad_data');
        l[i * d + i] = Math.sqrt(sum);
      } else {
        l[i * d + j] = sum / l[j * d + j]!;
      }
    }
  }
  const linv = new Float64Array(d * d); // lower-triangular L⁻¹ by forward substitution, column by column
  for (let j = 0; j < d; j++) {
    linv[j * d + j] = 1 / l[j * d + j]!;
    for (let i = j + 1; i < d; i++) {
      let sum = 0;
      for (let k = j; k < i; k++) sum -= l[i * d + k]! * linv[k * d + j]!;
      linv[i * d + j] = sum / l[i * d + i]!;
    }
  }
  const inv = new Float64Array(d * d); // (L⁻¹)ᵀ L⁻¹
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      let sum = 0;
      for (let k = j; k < d; k++) sum += linv[k * d + i]! * linv[k * d + j]!;
      inv[i * d + j] = sum;
      inv[j * d + i] = sum;
    }
  }
  return inv;
}

/**
 * The inverse of ledoitWolf's Σ = a·I + (b/n)·CᵀC (a = ρ·m, b = 1 − ρ, C the centred rows [n, d]), and ρ. When n < d,
 * ρ comes from the Gram matrix C Cᵀ (the same Ledoit–Wolf sums: ‖S‖² = Σ_ij (c_i·c_j)²/n², x_kᵀ S x_k =
 * Σ_j (c_k·c_j)²/n) and the inverse from the Woodbury identity Σ⁻¹ = (I − Cᵀ (C Cᵀ + (a·n/b)·I_n)⁻¹ C) / a:
 * O(n²d + nd²) instead of O(nd² + d³), which matters for the detector's 1,024-wide input block, fitted on a few
 * hundred examples a dozen times per cross-fitted detector (d = 1,024, n = 160: 0.2 s against several seconds).
 */
export function shrinkagePrecision(x: Float32Array, n: number, d: number, mean: Float64Array): { precision: Float64Array; shrinkage: number } {
  const direct = (): { precision: Float64Array; shrinkage: number } => {
    const { cov, shrinkage } = ledoitWolf(x, n, d, mean);
    return { precision: spdInverse(cov, d), shrinkage };
  };
  if (n >= d) return direct();
  const c = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) c[i * d + k] = x[i * d + k]! - mean[k]!;
  const gram = new Float64Array(n * n); // C Cᵀ
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += c[i * d + k]! * c[j * d + k]!;
      gram[i * n + j] = dot;
      gram[j * n + i] = dot;
    }
  }
  let trace = 0; // tr S · n
  let frob = 0; // ‖S‖_F² · n²
  let beta = 0;
  for (let i = 0; i < n; i++) {
    trace += gram[i * n + i]!;
    let rowSq = 0;
    for (let j = 0; j < n; j++) rowSq += gram[i * n + j]! ** 2;
    frob += rowSq;
    beta += gram[i * n + i]! ** 2 - (2 * rowSq) / n; // ‖x_i‖⁴ − 2 x_iᵀ S x_i
  }
  const sTrace = trace / n;
  const sNorm2 = frob / (n * n);
  const m = sTrace / d;
  const delta2 = (sNorm2 - 2 * m * sTrace + m * m * d) / d;
  beta = (beta + n * sNorm2) / (n * n * d);
  const shrinkage = delta2 > 0 ? Math.min(beta, delta2) / delta2 : 1;
  const a = shrinkage * m;
  const b = 1 - shrinkage;
  if (!(a > 0) || !(b > 0)) return direct();
  for (let i = 0; i < n; i++) gram[i * n + i]! += (a * n) / b;
  const inv = spdInverse(gram, n);
  const kc = new Float64Array(n * d); // (C Cᵀ + (a n / b) I)⁻¹ C
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const w = inv[i * n + j]!;
      for (let k = 0; k < d; k++) kc[i * d + k]! += w * c[j * d + k]!;
    }
  }
  const precision = new Float64Array(d * d); // upper triangle of −Cᵀ (…)⁻¹ C, then mirrored
  for (let i = 0; i < n; i++) {
    for (let u = 0; u < d; u++) {
      const cu = c[i * d + u]!;
      if (cu === 0) continue;
      const row = u * d;
      for (let v = u; v < d; v++) precision[row + v]! -= cu * kc[i * d + v]!;
    }
  }
  for (let u = 0; u < d; u++) {
    precision[u * d + u] = (1 + precision[u * d + u]!) / a;
    for (let v = u + 1; v < d; v++) {
      precision[u * d + v]! /= a;
      precision[v * d + u] = precision[u * d + v]!;
    }
  }
  return { precision, shrinkage };
}

/** Solves the small dense system A x = b (Gaussian elimination, partial pivoting). A is [n, n], overwritten. */
function solve(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const x = Float64Array.from(b);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r * n + col]!) > Math.abs(a[pivot * n + col]!)) pivot = r;
    if (pivot !== col) {
      for (let k = 0; k < n; k++) [a[col * n + k], a[pivot * n + k]] = [a[pivot * n + k]!, a[col * n + k]!];
      [x[col], x[pivot]] = [x[pivot]!, x[col]!];
    }
    const p = a[col * n + col]!;
    for (let r = col + 1; r < n; r++) {
      const f = a[r * n + col]! / p;
      if (f === 0) continue;
      for (let k = col; k < n; k++) a[r * n + k]! -= f * a[col * n + k]!;
      x[r]! -= f * x[col]!;
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    let sum = x[r]!;
    for (let k = r + 1; k < n; k++) sum -= a[r * n + k]! * x[k]!;
    x[r] = sum / a[r * n + r]!;
  }
  return x;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/**
 * Class-balanced logistic regression of "in" (1) against "out" (0) on rows [n, p] by Newton's method (IRLS), with an
 * L2 penalty `ridge` on the weights (not the bias) so perfectly separable classes still give finite weights. Each
 * class carries total weight 1/2. Returns weights [p] and bias of the logit wᵀx + b.
 */
export function logisticRegression(inRows: Float64Array, outRows: Float64Array, p: number, ridge: number): { weights: Float64Array; bias: number } {
  const nIn = inRows.length / p;
  const nOut = outRows.length / p;
  if (nIn === 0 || nOut === 0) throw new UnlearningError('logistic calibration needs both in- and out-of-distribution examples', 'bad_data');
  const q = p + 1; // last coordinate: bias
  let theta = new Float64Array(q);
  for (let iter = 0; iter < 100; iter++) {
    const grad = new Float64Array(q);
    const hess = new Float64Array(q * q);
    const visit = (rows: Float64Array, n: number, y: number): void => {
      const w = 0.5 / n;
      for (let i = 0; i < n; i++) {
        let z = theta[p]!;
        for (let k = 0; k < p; k++) z += theta[k]! * rows[i * p + k]!;
        const mu = sigmoid(z);
        const g = w * (mu - y);
        const h = w * mu * (1 - mu);
        for (let a = 0; a < q; a++) {
          const xa = a === p ? 1 : rows[i * p + a]!;
          grad[a]! += g * xa;
          for (let b = 0; b < q; b++) hess[a * q + b]! += h * xa * (b === p ? 1 : rows[i * p + b]!);
        }
      }
    };
    visit(inRows, nIn, 1);
    visit(outRows, nOut, 0);
    for (let k = 0; k < p; k++) {
      grad[k]! += ridge * theta[k]!;
      hess[k * q + k]! += ridge;
    }
    hess[p * q + p]! += 1e-9; // bias: keeps the system solvable when one class saturates
    const step = solve(hess, grad, q);
    const next = theta.map((v, k) => v - step[k]!);
    const moved = step.reduce((a, s) => Math.max(a, Math.abs(s)), 0);
    theta = next;
    if (moved < 1e-9) break;
  }
  return { weights: theta.subarray(0, p), bias: theta[p]! };
}

/** The q-quantile (0 ≤ q ≤ 1) of values, linear interpolation between order statistics. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0) throw new UnlearningError('quantile of no values', 'bad_data');
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (pos - lo) * (sorted[hi]! - sorted[lo]!);
}

/** Area under the ROC curve of scores for positives against negatives: P(pos > neg) + ½ P(pos = neg). */
export function auroc(positives: ArrayLike<number>, negatives: ArrayLike<number>): number {
  const all = [
    ...Array.from(positives, (s) => ({ s, pos: true })),
    ...Array.from(negatives, (s) => ({ s, pos: false })),
  ].sort((a, b) => a.s - b.s);
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]!.s === all[i]!.s) j++;
    const midRank = (i + j + 1) / 2; // ranks i+1 … j share their mean
    for (let k = i; k < j; k++) if (all[k]!.pos) rankSum += midRank;
    i = j;
  }
  const np = positives.length;
  const nn = negatives.length;
  if (np === 0 || nn === 0) throw new UnlearningError('AUROC needs positive and negative examples', 'bad_data');
  return (rankSum - (np * (np + 1)) / 2) / (np * nn); // Mann–Whitney U / (np·nn)
}
