/**
 * ESSA: evolution strategies on the singular values of a LoRA adapter (ALGORITHMS.md §5), with the OpenAI-ES update
 * (Salimans et al. 2017) whose seed/fitness communication ESSA's federated form follows.
 *
 * Search space. For every adapted projection, ΔW = B·A [dOut, dIn] is factored once as U diag(s0) Vᵀ
 * (src/linalg lowRankSvd, k = r values); U and V are frozen and only the concatenated s moves (optionally only the
 * top `topFraction` of each projection's values). The classification head (score.weight) is NOT searched: it keeps
 * its start value, so a head trained by backprop survives ESSA unchanged.
 *
 * Materialisation keeps A. Because lowRankSvd returns V inside A's row space, ΔW(s) = U diag(s) Vᵀ equals B(s)·A with
 * B(s) = U diag(s) P and P = Vᵀ A⁺ [k, r] (A⁺ from A's SVD; needs A of full row rank, true for its random init).
 * So an ESSA adapter has the same A as the start (FFA-LoRA's frozen A stays valid) and at s = s0 it reproduces the
 * start B up to float rounding.
 *
 * One generation: N antithetic pairs s ± σ·ε_i, ε_i = z(seed_i) over the searched entries (perturb.ts); fitness F
 * (higher is better) for each member; centred ranks r = rank/(2N−1) − 0.5 over all 2N values (ties share their mean
 * rank, so a pair with F⁺ = F⁻ contributes nothing — accuracy on a small batch ties often); the ascent direction
 * g = Σ_i (r_i⁺ − r_i⁻) ε_i / (2Nσ); Adam on the loss gradient −g + l2·s.
 *
 * Split for federation: `evaluateMembers` is what a client runs (returns (seed, F⁺, F⁻) records), `essaUpdate` is the
 * pure function the coordinator runs on those records alone; `trainEssa` does both locally. essaUpdate canonicalises
 * the record order and rounds fitness to float32 first, so arrival order and a float32 wire cannot change the result.
 */
import seedrandom from 'seedrandom';
import { lowRankSvd, svd } from '../linalg/svd.js';
import { matrix, multiply, transpose } from '../linalg/matrix.js';
import type { GPT2 } from '../model/gpt2.js';
import { toTf, validateAdapter, type LoraConfig } from '../model/lora.js';
import { cloneTensors, type HostTensor, type TensorMap } from '../tensors/host.js';
import { gatherBatch, ShuffledBatches, type HostBatch } from './batches.js';
import { TrainError } from './errors.js';
import { lossWindow } from './backprop.js';
import { classifyStats, type BatchStats } from './mezo.js';
import { normals, zOrder } from './perturb.js';
import { rowsOf, type BaseTrainOptions, type LocalTrainResult, type TrainerData, type TrainMetrics } from './types.js';

export interface EssaConfig {
  readonly sigma: number; // perturbation scale of s; ESSA/OpenAI-ES reference 0.02
  readonly lr: number; // Adam step size; reference 0.01
  readonly l2: number; // L2 coefficient added to the loss gradient (OpenAI-ES l2coeff); reference 0.005
  readonly beta1: number; // Adam first-moment decay
  readonly beta2: number; // Adam second-moment decay
  readonly adamEps: number; // added to √v
  readonly topFraction: number; // share of each projection's singular values that is searched (largest first); 1 = all
}

export const DEFAULT_ESSA: EssaConfig = Object.freeze({
  sigma: 0.02,
  lr: 0.01,
  l2: 0.005,
  beta1: 0.9,
  beta2: 0.999,
  adamEps: 1e-8,
  topFraction: 1,
});

/** One adapted projection's frozen factors. */
export interface EssaFactor {
  readonly module: string; // h.{i}.{module}; the adapter holds `${module}.lora_A.weight` / `.lora_B.weight`
  readonly dOut: number;
  readonly k: number; // singular values of this projection
  readonly r: number; // LoRA rank (columns of B)
  readonly u: Float32Array; // [dOut, k] left singular vectors
  readonly p: Float32Array; // [k, r] Vᵀ A⁺, so that B(s) = U diag(s) P
  readonly offset: number; // position of this factor's values in the concatenated s
}

/** Everything the update needs; float32 throughout so that serialising it is lossless. */
export interface EssaState {
  readonly factors: readonly EssaFactor[]; // in zOrder of module name
  readonly s: Float32Array; // [Σk] current singular values (searched and fixed ones)
  readonly active: Int32Array; // indices into s that are searched; ε has this length
  readonly m: Float32Array; // [active] Adam first moment
  readonly v: Float32Array; // [active] Adam second moment
  readonly t: number; // Adam steps taken (generations applied)
}

/** What a client reports for one antithetic pair. */
export interface EssaRecord {
  readonly seed: number; // ε = z(seed) over the searched entries
  readonly fPlus: number; // F(s + σε)
  readonly fMinus: number; // F(s − σε)
}

/** Higher is better. Receives a full adapter (same names as the start). */
export type Fitness = (adapter: TensorMap) => number;

const LORA_A = '.lora_A.weight';
const LORA_B = '.lora_B.weight';

function loraModules(adapter: TensorMap): string[] {
  const modules = [...adapter.keys()].filter((n) => n.endsWith(LORA_A)).map((n) => n.slice(0, -LORA_A.length));
  if (modules.length === 0) throw new TrainError('ESSA needs an adapter with LoRA factors; none found', 'bad_adapter');
  return zOrder(modules);
}

function factorTensors(adapter: TensorMap, module: string): { a: HostTensor; b: HostTensor } {
  const a = adapter.get(module + LORA_A);
  const b = adapter.get(module + LORA_B);
  if (!a || !b || a.shape.length !== 2 || b.shape.length !== 2 || a.shape[0] !== b.shape[1]) {
    throw new TrainError(`"${module}" needs lora_A [r, dIn] and lora_B [dOut, r] with the same r`, 'bad_adapter');
  }
  return { a, b };
}

/** P = Vᵀ A⁺ [k, r] with A⁺ = V_A diag(1/s_A) U_Aᵀ; singular values of A below 1e-7·max are treated as zero. */
function projectionOntoA(v: Float64Array, k: number, a: HostTensor): Float32Array {
  const [r, dIn] = a.shape as [number, number];
  const sa = svd(a.data, r, dIn); // U_A [r, ka], S_A [ka], V_A [dIn, ka]
  const cut = (sa.s[0] ?? 0) * 1e-7;
  const vt = transpose(matrix(v, dIn, k)); // [k, dIn]
  const vtVa = multiply(vt, sa.v); // [k, ka]
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < sa.s.length; j++) {
      const sj = sa.s[j]!;
      vtVa.data[i * sa.s.length + j] = sj > cut ? vtVa.data[i * sa.s.length + j]! / sj : 0;
    }
  }
  return Float32Array.from(multiply(vtVa, transpose(sa.u)).data); // [k, r]
}

/** Factors every LoRA projection of `adapter` and starts Adam from zero. */
export function essaInit(adapter: TensorMap, config: EssaConfig = DEFAULT_ESSA): EssaState {
  if (!(config.topFraction > 0 && config.topFraction <= 1)) {
    throw new TrainError(`topFraction must be in (0, 1], got ${config.topFraction}`, 'bad_option');
  }
  const factors: EssaFactor[] = [];
  const s: number[] = [];
  const active: number[] = [];
  for (const module of loraModules(adapter)) {
    const { a, b } = factorTensors(adapter, module);
    const [dOut, r] = b.shape as [number, number];
    const dIn = a.shape[1]!;
    const f = lowRankSvd(b.data, a.data, dOut, r, dIn); // U [dOut, k], s [k], V [dIn, k]
    const k = f.s.length;
    const offset = s.length;
    const searched = Math.ceil(config.topFraction * k);
    for (let j = 0; j < k; j++) {
      if (j < searched) active.push(offset + j);
      s.push(f.s[j]!);
    }
    factors.push({ module, dOut, k, r, u: Float32Array.from(f.u.data), p: projectionOntoA(f.v.data, k, a), offset });
  }
  return {
    factors,
    s: Float32Array.from(s),
    active: Int32Array.from(active),
    m: new Float32Array(active.length),
    v: new Float32Array(active.length),
    t: 0,
  };
}

/** B(s) = U diag(s) P [dOut, r] for one factor, from the concatenated values `s`. */
function materialiseB(f: EssaFactor, s: ArrayLike<number>): Float32Array {
  const w = new Float64Array(f.k * f.r); // diag(s) P
  for (let j = 0; j < f.k; j++) {
    const sj = s[f.offset + j]!;
    for (let c = 0; c < f.r; c++) w[j * f.r + c] = sj * f.p[j * f.r + c]!;
  }
  const out = new Float32Array(f.dOut * f.r);
  for (let i = 0; i < f.dOut; i++) {
    for (let c = 0; c < f.r; c++) {
      let acc = 0;
      for (let j = 0; j < f.k; j++) acc += f.u[i * f.k + j]! * w[j * f.r + c]!;
      out[i * f.r + c] = acc;
    }
  }
  return out;
}

/** The adapter at singular values `s`: every lora_B replaced by B(s); A, the head and anything else from `base`. */
export function essaAdapter(state: EssaState, base: TensorMap, s: ArrayLike<number> = state.s): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of base) out.set(name, t);
  for (const f of state.factors) {
    const name = f.module + LORA_B;
    const b = base.get(name);
    if (!b || b.shape[0] !== f.dOut || b.shape[1] !== f.r) {
      throw new TrainError(`adapter tensor "${name}" does not match the ESSA state`, 'bad_adapter');
    }
    out.set(name, { shape: [f.dOut, f.r], data: materialiseB(f, s) });
  }
  return out;
}

/** The singular values of a population member: s + sign·σ·z(seed) on the searched entries (float64). */
export function memberValues(state: EssaState, seed: number, sign: 1 | -1, sigma: number): Float64Array {
  const eps = normals(seed, state.active.length);
  const out = Float64Array.from(state.s);
  for (let i = 0; i < eps.length; i++) out[state.active[i]!]! += sign * sigma * eps[i]!;
  return out;
}

/** Client side: F(s + σε) and F(s − σε) for each assigned seed (2 fitness calls per seed). */
export function evaluateMembers(
  state: EssaState,
  base: TensorMap,
  seeds: readonly number[],
  fitness: Fitness,
  sigma: number = DEFAULT_ESSA.sigma,
): EssaRecord[] {
  return seeds.map((seed) => ({
    seed,
    fPlus: fitness(essaAdapter(state, base, memberValues(state, seed, 1, sigma))),
    fMinus: fitness(essaAdapter(state, base, memberValues(state, seed, -1, sigma))),
  }));
}

/** Centred ranks in [−0.5, 0.5] of `values`; tied values share the mean of their ranks. */
export function centredRanks(values: readonly number[]): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a]! - values[b]! || a - b);
  const out = new Float64Array(n);
  for (let lo = 0; lo < n; ) {
    let hi = lo;
    while (hi + 1 < n && values[order[hi + 1]!] === values[order[lo]!]) hi++;
    const rank = (lo + hi) / 2;
    for (let j = lo; j <= hi; j++) out[order[j]!] = n > 1 ? rank / (n - 1) - 0.5 : 0;
    lo = hi + 1;
  }
  return out;
}

/**
 * Coordinator side (pure): the next state from one generation's records. Records are sorted by (seed, F⁺, F⁻) and
 * fitness rounded to float32 first, so any arrival order and a float32 transport give a bitwise-identical result.
 */
export function essaUpdate(state: EssaState, records: readonly EssaRecord[], config: EssaConfig = DEFAULT_ESSA): EssaState {
  if (records.length === 0) return state; // no evaluations: keep the state (Flower's "return nothing keeps the model")
  const recs = records
    .map((r) => ({ seed: r.seed, fPlus: Math.fround(r.fPlus), fMinus: Math.fround(r.fMinus) }))
    .sort((a, b) => a.seed - b.seed || a.fPlus - b.fPlus || a.fMinus - b.fMinus);
  for (const r of recs) {
    if (!Number.isFinite(r.fPlus) || !Number.isFinite(r.fMinus)) {
      throw new TrainError(`fitness for seed ${r.seed} is not finite`, 'diverged');
    }
  }
  const n = recs.length;
  const ranks = centredRanks(recs.flatMap((r) => [r.fPlus, r.fMinus]));
  const dim = state.active.length;
  const g = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    const w = ranks[2 * i]! - ranks[2 * i + 1]!;
    if (w === 0) continue;
    const eps = normals(recs[i]!.seed, dim);
    for (let j = 0; j < dim; j++) g[j]! += w * eps[j]!;
  }
  const { lr, l2, beta1, beta2, adamEps, sigma } = config;
  const t = state.t + 1;
  const step = (lr * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t); // OpenAI-ES Adam: bias corrections in the step
  const s = state.s.slice();
  const m = state.m.slice();
  const v = state.v.slice();
  for (let j = 0; j < dim; j++) {
    const idx = state.active[j]!;
    const grad = -g[j]! / (2 * n * sigma) + l2 * s[idx]!; // loss gradient: ascend F, shrink s
    m[j] = beta1 * m[j]! + (1 - beta1) * grad;
    v[j] = beta2 * v[j]! + (1 - beta2) * grad * grad;
    s[idx] = s[idx]! - (step * m[j]!) / (Math.sqrt(v[j]!) + adamEps);
  }
  return { ...state, s, m, v, t };
}

/** Member seeds of one generation, from a run seed: the coordinator hands these out; clients never choose them. */
export function generationSeeds(runSeed: string | number, generation: number, pairs: number): number[] {
  const rng = seedrandom.alea(`essa/${runSeed}/${generation}`);
  return Array.from({ length: pairs }, () => rng.int32() >>> 0);
}

/**
 * The state as named host tensors (lossless: everything is float32, indices < 2^24): `essa.<module>.u` [dOut, k],
 * `essa.<module>.p` [k, r], `essa.s` [Σk], `essa.active` [A], `essa.m` / `essa.v` [A], `essa.t` [1]. Store it with
 * the project's tensor files; `essaStateFromTensors` is the inverse.
 */
export function essaStateTensors(state: EssaState): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const f of state.factors) {
    out.set(`essa.${f.module}.u`, { shape: [f.dOut, f.k], data: f.u });
    out.set(`essa.${f.module}.p`, { shape: [f.k, f.r], data: f.p });
  }
  out.set('essa.s', { shape: [state.s.length], data: state.s });
  out.set('essa.active', { shape: [state.active.length], data: Float32Array.from(state.active) });
  out.set('essa.m', { shape: [state.m.length], data: state.m });
  out.set('essa.v', { shape: [state.v.length], data: state.v });
  out.set('essa.t', { shape: [1], data: Float32Array.of(state.t) });
  return out;
}

export function essaStateFromTensors(tensors: TensorMap): EssaState {
  const need = (name: string): HostTensor => {
    const t = tensors.get(name);
    if (!t) throw new TrainError(`ESSA state lacks "${name}"`, 'bad_adapter');
    return t;
  };
  const modules = zOrder([...tensors.keys()].filter((n) => /^essa\..+\.u$/.test(n)).map((n) => n.slice(5, -2)));
  const factors: EssaFactor[] = [];
  let offset = 0;
  for (const module of modules) {
    const u = need(`essa.${module}.u`);
    const p = need(`essa.${module}.p`);
    const [dOut, k] = u.shape as [number, number];
    if (p.shape[0] !== k) throw new TrainError(`ESSA state for "${module}": u and p disagree on k`, 'bad_adapter');
    factors.push({ module, dOut, k, r: p.shape[1]!, u: u.data.slice(), p: p.data.slice(), offset });
    offset += k;
  }
  const s = need('essa.s').data.slice();
  const active = Int32Array.from(need('essa.active').data);
  const m = need('essa.m').data.slice();
  const v = need('essa.v').data.slice();
  if (s.length !== offset || m.length !== active.length || v.length !== active.length || active.some((i) => i < 0 || i >= offset)) {
    throw new TrainError('ESSA state tensors have inconsistent sizes', 'bad_adapter');
  }
  return { factors, s, active, m, v, t: need('essa.t').data[0]! };
}

// ---------------------------------------------------------------------------------------------------------------
// local training: the client's evaluation and the coordinator's update in one loop

export type FitnessKind = 'accuracy' | 'loss';

/** One generation: evaluate the members of `seeds` with `fitness`, then apply the update. */
export function essaGeneration(
  state: EssaState,
  base: TensorMap,
  seeds: readonly number[],
  fitness: Fitness,
  config: EssaConfig = DEFAULT_ESSA,
): { state: EssaState; records: EssaRecord[] } {
  const records = evaluateMembers(state, base, seeds, fitness, config.sigma);
  return { state: essaUpdate(state, records, config), records };
}

/** Fitness = accuracy (accuracy kind) or −mean cross-entropy (loss kind) of the classifier on `batch`. */
export function batchFitness(model: GPT2, lora: LoraConfig, batch: HostBatch, kind: FitnessKind, seen?: BatchStats[]): Fitness {
  if (batch.size === 0) throw new TrainError('a fitness batch needs at least one example', 'bad_data');
  return (adapter) => {
    const tensors = toTf(adapter);
    let stats: BatchStats;
    try {
      stats = classifyStats(model, lora, tensors, batch);
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
    seen?.push(stats);
    if (kind === 'accuracy') return stats.correct / batch.size;
    let sum = 0;
    for (const l of stats.losses) sum += l;
    return -sum / batch.size;
  };
}

export interface EssaOptions extends Omit<BaseTrainOptions, 'trainable' | 'lr'> {
  /** `steps` counts generations; `batchSize` is the fitness batch, shared by all members of a generation. */
  readonly pairs: number; // antithetic pairs N per generation (2N forward passes)
  readonly fitness: FitnessKind; // what the members are ranked by
  readonly essa?: Partial<EssaConfig>; // σ, Adam lr, L2, topFraction; DEFAULT_ESSA otherwise
}

export interface EssaResult extends LocalTrainResult {
  /** Per generation, the (seed, F⁺, F⁻) records: with the start state, enough to recompute every update. */
  readonly trace: EssaRecord[][];
  /** The final state (serialise with essaStateTensors to continue later). */
  readonly state: EssaState;
}

/**
 * Local ESSA (async only to yield between generations): `steps` generations on fresh shuffled batches, member seeds from generationSeeds(seed, g, pairs).
 * Trains the singular values behind every lora_B; A and the head keep their start values. Metrics: the mean member
 * loss / accuracy of the first and last generations (member losses at s ± σε, no extra forward passes).
 */
export async function trainEssa(
  model: GPT2,
  lora: LoraConfig,
  start: TensorMap,
  data: TrainerData,
  opts: EssaOptions,
): Promise<EssaResult> {
  if (!Number.isInteger(opts.steps) || opts.steps < 0) throw new TrainError(`steps must be a non-negative integer, got ${opts.steps}`, 'bad_option');
  if (!Number.isInteger(opts.pairs) || opts.pairs < 1) throw new TrainError(`pairs must be a positive integer, got ${opts.pairs}`, 'bad_option');
  try {
    validateAdapter(start, model.config, lora);
  } catch (err) {
    throw new TrainError(`the start adapter does not fit the model: ${(err as Error).message}`, 'bad_adapter', { cause: err });
  }
  const config: EssaConfig = Object.freeze({ ...DEFAULT_ESSA, ...opts.essa });
  const began = performance.now();
  const rows = rowsOf(data);
  const sampler = new ShuffledBatches(rows, opts.batchSize, opts.seed);
  let state = essaInit(start, config);
  const trace: EssaRecord[][] = [];
  const losses: number[] = [];
  const accuracies: number[] = [];
  for (let gen = 0; gen < opts.steps; gen++) {
    const batch = gatherBatch(data, sampler.next());
    const seen: BatchStats[] = [];
    const fitness = batchFitness(model, lora, batch, opts.fitness, seen);
    const step = essaGeneration(state, start, generationSeeds(opts.seed, gen, opts.pairs), fitness, config);
    state = step.state;
    trace.push(step.records);
    const total = seen.length * batch.size;
    losses.push(seen.reduce((a, s) => a + s.losses.reduce((x, y) => x + y, 0), 0) / total);
    accuracies.push(seen.reduce((a, s) => a + s.correct, 0) / total);
    opts.onStep?.({ step: gen + 1, steps: opts.steps, loss: losses[gen]!, lr: config.lr, batchSize: batch.size });
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const loss = lossWindow(losses);
  const acc = lossWindow(accuracies);
  const metrics: TrainMetrics = {
    loss_before: loss.before,
    loss_after: loss.after,
    accuracy_before: acc.before,
    accuracy_after: acc.after,
    steps: opts.steps,
    seconds: (performance.now() - began) / 1000,
  };
  const trainable = state.factors.map((f) => f.module + LORA_B);
  return { adapter: cloneTensors(essaAdapter(state, start)), trainable, numExamples: rows.length, metrics, trace, state };
}
