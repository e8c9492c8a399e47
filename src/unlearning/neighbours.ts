/**
 * Nearest-neighbour scoring of the detector's input block (detector.ts): how close an input's hashed n-gram profile
 * (ngrams.ts) comes to its k nearest rows of a bank — D_t's rows, or the generic inputs' — as 1 − the mean of the k
 * largest cosines. The profiles are unit vectors (√ of frequencies that sum to 1), so a cosine is a dot product.
 *
 * Why neighbours and not the block's Gaussian, as far as we can tell: a forget group mixes several kinds of text,
 * which one mean and covariance blur, while an unseen member often has a near-duplicate in D_t. On
 * SpamAssassin's held-out protocol the relative form (distance to the generic bank − distance to D_t's, k = 5) beat
 * the block's relative Mahalanobis distance on every group (hard-ham-1 0.960 against 0.938; BENCHMARKS.md).
 *
 * A bank is held bucket-major (postings: for each bucket, the rows that use it), so a query walks only the
 * postings of its own non-zeros: a few hundred buckets of each row, of which a bank row fills about a fifth.
 * Pure host code.
 */
import type { SparseRows } from './ngrams.js';

/** A bank of m unit rows [m, dim], indexed by bucket. */
export interface PostingBank {
  readonly rows: number; // m
  readonly dim: number;
  readonly offsets: Int32Array; // [dim + 1]: bucket c's postings at [offsets[c], offsets[c + 1])
  readonly row: Int32Array; // the bank row of each posting
  readonly value: Float32Array;
}

/** The postings of dense rows x [m, dim]. */
export function postingBank(x: Float32Array, m: number, dim: number): PostingBank {
  const offsets = new Int32Array(dim + 1);
  for (let i = 0; i < m; i++) for (let c = 0; c < dim; c++) if (x[i * dim + c] !== 0) offsets[c + 1]!++;
  for (let c = 0; c < dim; c++) offsets[c + 1]! += offsets[c]!;
  const next = offsets.slice(0, dim);
  const row = new Int32Array(offsets[dim]!);
  const value = new Float32Array(offsets[dim]!);
  for (let i = 0; i < m; i++) {
    for (let c = 0; c < dim; c++) {
      const v = x[i * dim + c]!;
      if (v === 0) continue;
      const p = next[c]!++;
      row[p] = i;
      value[p] = v;
    }
  }
  return { rows: m, dim, offsets, row, value };
}

/**
 * For each query row: 1 − the mean of its k largest cosines with the bank's rows (k capped at the bank's size). An
 * empty bank, or an empty query row, is at distance 1 from everything.
 */
export function neighbourDistances(bank: PostingBank, queries: SparseRows, k: number): Float64Array {
  if (queries.dim !== bank.dim) throw new RangeError(`queries are ${queries.dim} wide, the bank ${bank.dim}`);
  // Fields in locals and float32 sums: this loop is most of a served batch's detector time (1.4× faster than without).
  const { offsets: starts, row, value, rows: m } = bank;
  const { offsets, index, value: qValue, n } = queries;
  const kk = Math.min(k, m);
  const out = new Float64Array(n);
  const sims = new Float32Array(m);
  const top = new Float64Array(kk); // descending
  for (let i = 0; i < n; i++) {
    sims.fill(0);
    const to = offsets[i + 1]!;
    for (let p = offsets[i]!; p < to; p++) {
      const c = index[p]!;
      const v = qValue[p]!;
      const end = starts[c + 1]!;
      for (let q = starts[c]!; q < end; q++) sims[row[q]!]! += v * value[q]!;
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
