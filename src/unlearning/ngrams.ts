/**
 * The detector's input block (detector.ts): a hashed bag of the input's token n-grams, computed from the token ids
 * alone, so it costs no forward pass of the base — a few hundred hash updates per input on the host.
 *
 * Each of an input's real (non-pad) tokens starts one n-gram per order n in `orders` (those that fit before the end);
 * an n-gram's ids are hashed with the order as salt into one of `buckets` buckets. The feature is √(count / total),
 * total = the input's n-gram count: the square root of the n-gram frequencies (the Hellinger embedding), so an input's
 * length does not move it and a frequent n-gram does not swamp the rare ones. On byte-level bases the 3- and 4-grams
 * are word pieces and short words; on a BPE base they are phrases. The ids are hashed as the base's tokenizer produced
 * them, so the block is valid for one tokenizer: the detector records it with the base it was fitted on.
 *
 * Why: the embedding output's pooled mean and spread (features.ts) see which tokens an input holds only through a
 * 64-wide projection; SpamAssassin groups that look alike there (commercial ham against spam) differ in the words
 * they use. On the bench's held-out protocol the block alone separated every group better than the embedding layer
 * (hard-ham-1 0.936 against 0.864; BENCHMARKS.md, Unlearning).
 *
 * What it reveals: the block's mean over D_t is the forget set's average n-gram profile, readable against any text's
 * (detector.ts, "What a package reveals"); `input: null` in the detector config leaves it out.
 *
 * The hash is part of the package format (a detector fitted with one hash is meaningless under another): never
 * change it without a new format.
 */
import { gatherBatch } from '../train/batches.js';
import type { TrainerData } from '../train/types.js';
import { rowsOf } from '../train/types.js';
import { UnlearningError } from './errors.js';

/** Which n-grams are hashed, and into how many buckets (the block's feature width). */
export interface NgramSpec {
  readonly orders: readonly number[]; // n of each n-gram kind, e.g. [3, 4]
  readonly buckets: number;
}

/** An input block's features of n inputs, row i's non-zeros at index/value[offsets[i] … offsets[i + 1]). */
export interface SparseRows {
  readonly n: number;
  readonly dim: number;
  readonly offsets: Int32Array; // [n + 1]
  readonly index: Int32Array; // distinct and ascending within a row
  readonly value: Float32Array;
}

export function checkNgramSpec(spec: NgramSpec): void {
  const { orders, buckets } = spec;
  if (!Array.isArray(orders) || orders.length === 0 || orders.some((n) => !Number.isInteger(n) || n < 1 || n > 16) || new Set(orders).size !== orders.length) {
    throw new UnlearningError(`n-gram orders must be distinct integers in 1 … 16, got ${JSON.stringify(orders)}`, 'bad_option');
  }
  if (!Number.isInteger(buckets) || buckets < 2 || buckets > 8192) throw new UnlearningError(`n-gram buckets must be an integer in 2 … 8192, got ${buckets}`, 'bad_option');
}

export const sameNgramSpec = (a: NgramSpec | undefined, b: NgramSpec | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.buckets === b.buckets && a.orders.join() === b.orders.join());

/** The input block's features of ids [b, t] with mask [b, t] (1 token, 0 pad; a row's real tokens may have gaps). */
export function ngramRows(ids: ArrayLike<number>, mask: ArrayLike<number>, b: number, t: number, spec: NgramSpec): SparseRows {
  const { orders, buckets } = spec;
  const offsets = new Int32Array(b + 1);
  const index = new Int32Array(b * t * orders.length); // at most one bucket per n-gram
  const value = new Float32Array(index.length);
  const counts = new Int32Array(buckets); // zero between rows: only the touched buckets are reset
  const tokens = new Int32Array(t);
  let nnz = 0;
  for (let row = 0; row < b; row++) {
    let len = 0;
    for (let j = 0; j < t; j++) if (mask[row * t + j]! !== 0) tokens[len++] = ids[row * t + j]!;
    const first = nnz;
    let total = 0;
    for (const n of orders) {
      for (let at = 0; at + n <= len; at++) {
        // A multiplicative hash of the ids salted with n, then a murmur-style finaliser.
        let h = n | 0;
        for (let j = at; j < at + n; j++) h = (Math.imul(h, 1000003) + tokens[j]! + 1) | 0;
        h ^= h >>> 15;
        h = Math.imul(h, 0x2c1b3c6d);
        h ^= h >>> 12;
        const k = (h >>> 0) % buckets;
        if (counts[k] === 0) index[nnz++] = k;
        counts[k]!++;
        total++;
      }
    }
    index.subarray(first, nnz).sort(); // ascending: scoring then walks each row of M forward (device-detector.ts)
    for (let p = first; p < nnz; p++) {
      const k = index[p]!;
      value[p] = Math.sqrt(counts[k]! / total);
      counts[k] = 0;
    }
    offsets[row + 1] = nnz;
  }
  return { n: b, dim: buckets, offsets, index: index.slice(0, nnz), value: value.slice(0, nnz) };
}

/** Row-major [n, dim] dense copy of sparse rows (the fit needs dense rows). */
export function denseRows(rows: SparseRows): Float32Array {
  const out = new Float32Array(rows.n * rows.dim);
  for (let i = 0; i < rows.n; i++) for (let p = rows.offsets[i]!; p < rows.offsets[i + 1]!; p++) out[i * rows.dim + rows.index[p]!] = rows.value[p]!;
  return out;
}

/** Sparse rows of dense [n, dim] features (their non-zeros). */
export function sparseRows(x: Float32Array, n: number, dim: number): SparseRows {
  const offsets = new Int32Array(n + 1);
  const index: number[] = [];
  const value: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < dim; k++) {
      const v = x[i * dim + k]!;
      if (v !== 0) {
        index.push(k);
        value.push(v);
      }
    }
    offsets[i + 1] = index.length;
  }
  return { n, dim, offsets, index: Int32Array.from(index), value: Float32Array.from(value) };
}

/** Dense [n, buckets] input-block features of every row of `data` (or its subset, in subset order). */
export function ngramFeatures(data: TrainerData, spec: NgramSpec): Float32Array {
  checkNgramSpec(spec);
  const batch = gatherBatch(data, rowsOf(data));
  return denseRows(ngramRows(batch.ids, batch.mask, batch.size, batch.seqLen, spec));
}
