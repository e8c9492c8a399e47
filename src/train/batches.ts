/**
 * Mini-batch selection for the trainers. Two samplers over a fixed list of row indices:
 * - `ShuffledBatches`: epochs of a seeded permutation, fixed batch size (ordinary SGD / MeZO / ESSA).
 * - `PoissonBatches`: each row joins each batch independently with probability q, so batch sizes vary with mean q·N.
 *   DP-SGD's privacy amplification by subsampling (ALGORITHMS.md §2) assumes exactly this sampling.
 * Both draw from a seedrandom stream, so a (rows, seed) pair always yields the same batches.
 *
 * `gatherBatch` copies the chosen rows out of an encoding into contiguous host arrays ready for tf.tensor2d.
 */
import seedrandom from 'seedrandom';
import { TrainError } from './errors.js';
import type { EncodedExamples } from './types.js';

/** A source of mini-batches: row indices into the encoding. */
export interface BatchSampler {
  /** The next batch's row indices (may be empty under Poisson sampling). */
  next(): Int32Array;
}

/** A uniform [0, 1) generator; seedrandom's PRNG satisfies it. */
export type Uniform = () => number;

export function seededUniform(seed: number | string): Uniform {
  return seedrandom(`lethe-batches:${seed}`);
}

/**
 * Fixed-size batches without replacement within an epoch: rows are permuted (Fisher–Yates), consumed in order, and
 * re-permuted when exhausted; a batch that crosses an epoch boundary continues into the next permutation. The batch
 * size is capped at the number of rows so one batch never holds a row twice.
 */
export class ShuffledBatches implements BatchSampler {
  readonly batchSize: number;
  private readonly perm: Int32Array;
  private cursor: number;
  private readonly rng: Uniform;

  constructor(rows: readonly number[], batchSize: number, seed: number | string) {
    if (rows.length === 0) throw new TrainError('cannot draw batches from zero examples', 'bad_data');
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new TrainError(`batch size must be a positive integer, got ${batchSize}`, 'bad_option');
    }
    this.batchSize = Math.min(batchSize, rows.length);
    this.perm = Int32Array.from(rows);
    this.rng = seededUniform(seed);
    this.cursor = this.perm.length; // forces a shuffle on the first draw
  }

  next(): Int32Array {
    const out = new Int32Array(this.batchSize);
    for (let i = 0; i < out.length; i++) {
      if (this.cursor === this.perm.length) this.shuffle();
      out[i] = this.perm[this.cursor++]!;
    }
    return out;
  }

  private shuffle(): void {
    const p = this.perm;
    for (let i = p.length - 1; i > 0; i--) {
      const j = Math.floor(this.rng() * (i + 1));
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    this.cursor = 0;
  }
}

/**
 * Poisson subsampling: every row is included independently with probability `rate` (q). Expected size q·N.
 * Rows keep their list order within a batch (order does not matter for a summed gradient).
 */
export class PoissonBatches implements BatchSampler {
  constructor(
    private readonly rows: readonly number[],
    readonly rate: number,
    private readonly rng: Uniform,
  ) {
    if (rows.length === 0) throw new TrainError('cannot draw batches from zero examples', 'bad_data');
    if (!(rate > 0 && rate <= 1)) throw new TrainError(`sampling rate must be in (0, 1], got ${rate}`, 'bad_option');
  }

  /** Expected batch size q·N: the fixed DP-SGD denominator. */
  get expectedSize(): number {
    return this.rate * this.rows.length;
  }

  next(): Int32Array {
    const picked: number[] = [];
    for (const r of this.rows) if (this.rng() < this.rate) picked.push(r);
    return Int32Array.from(picked);
  }
}

/** One batch copied out of an encoding. ids/mask are [size, seqLen] row-major; labels [size]. */
export interface HostBatch {
  readonly size: number;
  readonly seqLen: number;
  readonly ids: Int32Array;
  readonly mask: Float32Array;
  readonly labels: Int32Array;
}

export function gatherBatch(data: EncodedExamples, rows: ArrayLike<number>): HostBatch {
  const T = data.seqLen;
  const size = rows.length;
  const ids = new Int32Array(size * T);
  const mask = new Float32Array(size * T);
  const labels = new Int32Array(size);
  for (let b = 0; b < size; b++) {
    const r = rows[b]!;
    if (!(r >= 0 && r < data.n)) throw new TrainError(`row ${r} is outside the encoding (n = ${data.n})`, 'bad_data');
    ids.set(data.ids.subarray(r * T, (r + 1) * T), b * T);
    mask.set(data.mask.subarray(r * T, (r + 1) * T), b * T);
    labels[b] = data.labels[r]!;
  }
  return { size, seqLen: T, ids, mask, labels };
}

/** Consecutive slices of `rows` of at most `size` each (evaluation order, no shuffling). */
export function* chunks(rows: readonly number[], size: number): Generator<readonly number[]> {
  for (let i = 0; i < rows.length; i += size) yield rows.slice(i, i + size);
}
