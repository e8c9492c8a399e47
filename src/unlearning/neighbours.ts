/**
 * Nearest-neighbour scoring of the detector's input block (detector.ts): how close an input's hashed n-gram profile
 * (ngrams.ts) comes to its k nearest rows of a bank — D_t's rows, or the generic inputs' — as 1 − the mean of the k
 * largest cosines. The profiles are unit vectors (√ of frequencies that sum to 1), so a cosine is a dot product.
 *
 * Why neighbours and not the block's Gaussian, as far as we can tell: a forget group mixes several kinds of text,
 * which one mean and covariance blur, while an unseen member often has a near-duplicate in D_t. On
 * SpamAssassin's held-out protocol the relative form (distance to the generic bank − distance to D_t's, k = 5) beat
 * the block's relative Mahalanobis distance on every group (hard-ham-1 0.956 against 0.938; BENCHMARKS.md).
 *
 * A bank is held bucket-major in a WebAssembly memory, [W, m] padded to whole 64-byte blocks, so a query adds one
 * contiguous bank row per non-zero of its own (a few hundred of 1,024) into its m cosines with the SIMD weighted-sum
 * kernel of aggregation (fold-kernel.ts): 3× faster than walking postings of the non-zeros in plain JS (2.9 against
 * 8.6 ms for a batch of 32 against 2,000 rows), and the serving path's main cost for a large bank.
 */
import { foldKernelOver, type FoldFn } from '../aggregation/fold-kernel.js';
import type { SparseRows } from './ngrams.js';

/** A bank of m unit rows of width `dim`, laid out for neighbourDistances. */
export interface NeighbourBank {
  readonly rows: number; // m
  readonly dim: number;
  readonly stride: number; // m rounded up to 16 floats: one bucket's column in bytes / 4
  readonly fold: FoldFn;
  readonly sims: Float32Array; // [stride] a query's cosines, in the kernel's memory
  readonly weight: Float32Array; // [1] the query value being added, in the kernel's memory
  readonly simsAt: number; // byte addresses of the two above
  readonly weightAt: number;
}

/** The bank of dense rows x [m, dim]. */
export function neighbourBank(x: Float32Array, m: number, dim: number): NeighbourBank {
  const stride = Math.ceil(m / 16) * 16;
  const simsAt = dim * stride * 4;
  if (simsAt > 2 ** 30) throw new RangeError(`a neighbour bank of ${m} rows × ${dim} buckets needs ${Math.round(simsAt / 2 ** 20)} MiB; keep fewer rows`);
  const weightAt = simsAt + stride * 4;
  const { fold, memory } = foldKernelOver(weightAt + 64);
  const columns = new Float32Array(memory, 0, dim * stride);
  for (let i = 0; i < m; i++) {
    for (let c = 0; c < dim; c++) {
      const v = x[i * dim + c]!;
      if (v !== 0) columns[c * stride + i] = v;
    }
  }
  return { rows: m, dim, stride, fold, sims: new Float32Array(memory, simsAt, stride), weight: new Float32Array(memory, weightAt, 1), simsAt, weightAt };
}

/**
 * The k of a search of the generic bank of m' rows, when D_t's bank of m rows is searched with k: k·m'/m (never below
 * k), so that both searches look at the same share of their bank. With one k for both, the relative distance drifted
 * with the amount of generic data: hard-ham-1's held-out AUROC fell from 0.960 to 0.946 when the generic mails went
 * from 400 to 1,600, and a client's generic inputs are all its other data; scaled, 0.956 and 0.959 (BENCHMARKS.md).
 */
export function referenceK(k: number, rows: number, referenceRows: number): number {
  return Math.max(k, Math.round((k * referenceRows) / Math.max(rows, 1)));
}

/**
 * For each query row: 1 − the mean of its k largest cosines with the bank's rows (k capped at the bank's size). An
 * empty bank, or an empty query row, is at distance 1 from everything.
 */
export function neighbourDistances(bank: NeighbourBank, queries: SparseRows, k: number): Float64Array {
  if (queries.dim !== bank.dim) throw new RangeError(`queries are ${queries.dim} wide, the bank ${bank.dim}`);
  const { rows: m, stride, fold, sims, weight, simsAt, weightAt } = bank;
  const { offsets, index, value, n } = queries;
  const kk = Math.min(k, m);
  const out = new Float64Array(n);
  const top = new Float64Array(kk); // descending
  for (let i = 0; i < n; i++) {
    sims.fill(0);
    for (let p = offsets[i]!; p < offsets[i + 1]!; p++) {
      weight[0] = value[p]!;
      fold(simsAt, index[p]! * stride * 4, 0, weightAt, 1, stride * 4, 1); // sims += v · bank column
    }
    top.fill(-Infinity);
    let floor = -Infinity; // top[kk − 1]
    for (let j = 0; j < m; j++) {
      const s = sims[j]!;
      if (s <= floor) continue;
      let at = kk - 1;
      while (at > 0 && top[at - 1]! < s) {
        top[at] = top[at - 1]!;
        at--;
      }
      top[at] = s;
      floor = top[kk - 1]!;
    }
    let sum = 0;
    for (let j = 0; j < kk; j++) sum += top[j]!;
    out[i] = kk > 0 ? 1 - sum / kk : 1;
  }
  return out;
}
