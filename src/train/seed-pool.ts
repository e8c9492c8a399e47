/**
 * FedKSeed's seed-and-scalar protocol (Qin et al., ICML 2024; ALGORITHMS.md §4).
 *
 * The run fixes K candidate seeds from its public run seed. A client's MeZO steps draw seeds only from that pool and
 * upload K scalars (local[s] = Σ g over its steps that drew candidate s; ≤ 16 KiB as float32 for K = 4096). The
 * coordinator keeps pool[s] += Σ_k w_k local_k[s], and the adapter is θ = θ0 − lr · Σ_s pool[s] · z(s), which is
 * exact because plain SGD without weight decay is linear in the (seed, g) records. A client catches up by
 * downloading the pool and replaying.
 *
 * Cost: replay regenerates z(s) once per non-zero entry. The coordinator therefore replays each round's increment
 * onto the previous global adapter (replay(θ_prev, Δpool)) rather than the whole history from θ0.
 */
import seedrandom from 'seedrandom';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { TrainError } from './errors.js';
import { forEachNoise, sizesOf } from './perturb.js';
import { trainableNames, type Trainable } from './types.js';

/** FedKSeed's default pool size. */
export const DEFAULT_POOL_SIZE = 4096;

/** One zeroth-order step's upload-worthy record: the perturbation seed and the projected gradient. */
export interface SeedScalar {
  readonly seed: number; // unsigned 32-bit
  readonly g: number;
}

function checkPoolSize(k: number): void {
  if (!Number.isInteger(k) || k < 1 || k > 1 << 24) {
    throw new TrainError(`seed pool size must be an integer in [1, 2^24], got ${k}`, 'bad_option');
  }
}

/**
 * The run's K distinct candidate seeds, derived from the public run seed (Alea seeded with `fedkseed/<runSeed>`;
 * duplicates skipped so every candidate is a distinct direction). Identical in every process.
 */
export function candidateSeeds(runSeed: string, k = DEFAULT_POOL_SIZE): Uint32Array {
  checkPoolSize(k);
  const rng = seedrandom.alea(`fedkseed/${runSeed}`);
  const seen = new Set<number>();
  const out = new Uint32Array(k);
  while (seen.size < k) {
    const s = rng.int32() >>> 0;
    if (seen.has(s)) continue;
    out[seen.size] = s;
    seen.add(s);
  }
  return out;
}

/**
 * A stream of perturbation seeds for one local run, reproducible from `seed` and independent of the data (DPZero
 * requires it). Without a pool: fresh uniform 32-bit seeds. With a pool: uniform draws from its candidates.
 */
export function seedStream(seed: number, pool?: Uint32Array): () => number {
  const rng = seedrandom.alea(`zo-seeds/${seed}`);
  if (!pool) return () => rng.int32() >>> 0;
  if (pool.length === 0) throw new TrainError('the seed pool is empty', 'bad_option');
  return () => pool[Math.floor(rng() * pool.length)]!;
}

/** Candidate index of each seed, for `accumulate`. */
export function poolIndex(seeds: Uint32Array): Map<number, number> {
  return new Map([...seeds].map((s, i) => [s, i]));
}

/**
 * The K scalars a client uploads: local[i] = Σ g over the trace steps whose seed is candidate i (summed in float64,
 * rounded once). Throws if a step's seed is not a candidate (the trainer was not run with this pool).
 */
export function accumulate(trace: readonly SeedScalar[], seeds: Uint32Array): Float32Array {
  const index = poolIndex(seeds);
  const sum = new Float64Array(seeds.length);
  for (const { seed, g } of trace) {
    const i = index.get(seed);
    if (i === undefined) {
      throw new TrainError(`trace seed ${seed} is not one of the ${seeds.length} candidate seeds`, 'bad_option');
    }
    sum[i]! += g;
  }
  return Float32Array.from(sum);
}

/** Coordinator side: pool ← pool + w · local (pool kept in float64 across rounds). */
export function addScalars(pool: Float64Array, local: Float32Array, weight: number): void {
  if (pool.length !== local.length) {
    throw new TrainError(`expected ${pool.length} seed scalars, got ${local.length}`, 'bad_data');
  }
  for (let i = 0; i < pool.length; i++) pool[i]! += weight * local[i]!;
}

/**
 * θ0 − lr · Σ_s pool[s] · z(seeds[s]) over the trainable tensors of `start` (frozen ones copied unchanged; zero
 * entries skipped). The sum is accumulated in float64 and rounded to float32 once per value, so it can differ from a
 * step-by-step float32 trajectory by a few ulps of θ.
 */
export function replay(
  start: TensorMap,
  trainable: Trainable,
  pool: ArrayLike<number>,
  seeds: Uint32Array,
  lr: number,
): Map<string, HostTensor> {
  if (pool.length !== seeds.length) {
    throw new TrainError(`pool has ${pool.length} scalars for ${seeds.length} seeds`, 'bad_data');
  }
  const names = trainableNames(start.keys(), trainable);
  const sizes = sizesOf(start);
  const acc = new Map(names.map((n) => [n, new Float64Array(sizes.get(n)!)]));
  for (let s = 0; s < seeds.length; s++) {
    const w = pool[s]!;
    if (w === 0) continue;
    forEachNoise(sizes, names, seeds[s]!, (name, z) => {
      const a = acc.get(name)!;
      for (let i = 0; i < z.length; i++) a[i]! += w * z[i]!;
    });
  }
  const out = new Map<string, HostTensor>();
  for (const [name, t] of start) {
    const a = acc.get(name);
    const data = t.data.slice();
    if (a) for (let i = 0; i < data.length; i++) data[i] = t.data[i]! - lr * a[i]!;
    out.set(name, { shape: [...t.shape], data });
  }
  return out;
}
