/**
 * Micro-benchmark of the aggregation fold against memcpy.
 *
 * Setting: a round of `clients` distinct float32 updates of `bytes` each (distinct buffers, as after decoding K
 * uploads, so that sources come from memory rather than a hot cache line). Both sides touch the same buffers:
 *   memcpy_gbps    – Float32Array.set of each update into one destination; bytes of updates copied per second.
 *   fold_gbps      – weightedSum of all updates into one accumulator (the path the strategies use); bytes of
 *                    client updates folded per second (each update byte counted once).
 *   fold_each_gbps – foldInto of one update at a time (acc += w·delta), the in-place API, for comparison.
 * Each figure is the best of `trials` timed repetitions (best-of filters interference from other processes; both
 * sides are treated alike). Wall-clock reads make this a benchmark, not aggregation code.
 */
import { performance } from 'node:perf_hooks';
import { foldInto, weightedSum } from '../aggregation/aggregate.js';

export interface FoldMeasurement {
  readonly bytes: number;
  readonly clients: number;
  readonly memcpy_gbps: number;
  readonly fold_gbps: number;
  readonly fold_each_gbps: number;
  /** fold_gbps / memcpy_gbps (target ≥ 0.5). */
  readonly ratio: number;
}

export function measureFold(bytes: number, options: { clients?: number; trials?: number } = {}): FoldMeasurement {
  const clients = options.clients ?? 8;
  const trials = options.trials ?? 7;
  if (!Number.isInteger(bytes) || bytes < 4 || bytes % 4 !== 0) throw new RangeError(`bytes must be a positive multiple of 4, got ${bytes}`);
  const n = bytes / 4;
  const updates = Array.from({ length: clients }, (_, k) => Float32Array.from({ length: n }, (_, i) => ((i * 31 + k) % 97) / 97 - 0.5));
  const weights = updates.map(() => 1 / clients);
  const dst = new Float32Array(n);
  const total = bytes * clients;

  const memcpy = best(trials, () => {
    for (const u of updates) dst.set(u);
  });
  const fold = best(trials, () => {
    weightedSum(updates, weights, dst);
  });
  const each = best(trials, () => {
    dst.fill(0);
    for (let k = 0; k < clients; k++) foldInto(dst, updates[k]!, weights[k]!);
  });
  const gbps = (seconds: number): number => total / seconds / 1e9;
  return {
    bytes,
    clients,
    memcpy_gbps: gbps(memcpy),
    fold_gbps: gbps(fold),
    fold_each_gbps: gbps(each),
    ratio: memcpy / fold,
  };
}

/** Shortest of `trials` timings in seconds, after one warm-up run. */
function best(trials: number, run: () => void): number {
  run();
  let min = Number.POSITIVE_INFINITY;
  for (let t = 0; t < trials; t++) {
    const start = performance.now();
    run();
    min = Math.min(min, (performance.now() - start) / 1000);
  }
  return min;
}
