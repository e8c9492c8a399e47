/**
 * Forward-only clients in federated rounds: MeZO with FedKSeed's seed-scalar upload (ALGORITHMS.md §3–§4) and ESSA
 * (§5), next to backprop and dense MeZO in the same round.
 *
 * How a mixed round combines. Every accepted upload becomes a dense delta over the run's travelling tensors
 * (layout.upload) BEFORE the aggregation strategy runs, so the strategy, its weighting, the central-DP wrapper
 * (server-side clipping) and the server optimizer treat all modes alike:
 *   - UPDATE_KIND_DENSE (backprop, dense MeZO): the uploaded delta as is.
 *   - UPDATE_KIND_SEED_SCALARS: δ_k = −lr · Σ_s local_k[s] · z(seed_s) over the trainable tensors (seed-pool.ts
 *     replay onto the round's start adapter, minus that adapter). lr is the MeZO task's learning_rate (local.mezo_lr),
 *     seeds the run's K candidates. Because the delta is linear in the scalars, a pure seed round aggregates to
 *     −lr · Σ_s (Σ_k w_k local_k[s]) · z(s) = −lr · Σ_s Δpool[s] · z(s): FedKSeed's pool update, exactly.
 *   - UPDATE_KIND_ESSA_FITNESS: the round's ESSA uploads together are ONE generation of the run's ES: the (seed, F⁺, F⁻)
 *     records of all of them (seeds implied by each task's member_seeds) go through essaUpdate (order-independent),
 *     and the step's lora_B change B(s' − s) = U diag(s' − s) P (essa-basis.ts) joins the aggregation as one update
 *     ("essa-population") weighted by the ESSA clients' examples together. In a pure ESSA round that is the ES step
 *     itself; in a mixed round it is blended like any other participant's proposal, while the ES keeps its own
 *     iterate s and Adam moments.
 *
 * State kept between rounds (in the strategy document, StrategyState):
 *   - essa: the ESSA state (safetensors blob: U, P, s, active, Adam m, v, t) and the basis clients fetch (the wire
 *     payload U, P, active). Initialised by SVD of the start adapter of the first round that samples an ESSA client
 *     (a fresh adapter's B = 0 gives s = 0 and a random orthonormal basis inside A's row space), frozen afterwards.
 *   - seedPool: FedKSeed's pool Σ_rounds Δpool as one float32 tensor "seed_pool" [K], kept while it reproduces the
 *     adapter: θ = θ0 − lr · Σ_s pool[s] z(s) holds only if every round so far was seed uploads aggregated linearly
 *     (ffa/fedavg, server optimizer fedavg at lr 1, no central or local noise). The first round that breaks this marks
 *     the pool invalid for good and tasks stop naming it.
 *
 * Catch-up: a client never needs the pool. The task names the dense adapter, which already holds every round's
 * result; pool replay (replay(θ0, pool)) is an optional way to reach the same adapter from the seeded init and K
 * scalars instead of downloading it, at the cost of one z(s) regeneration per non-zero pool entry.
 */
import type { ClientUpdate } from '../aggregation/index.js';
import { roundWeights } from '../aggregation/updates.js';
import { DEFAULT_ESSA, essaInit, essaStateFromTensors, essaStateTensors, generationSeeds, type EssaConfig, type EssaRecord, type EssaState } from '../train/essa.js';
import { essaBasisShapes, essaBasisTensors, essaStep } from '../train/essa-basis.js';
import { candidateSeeds, replay } from '../train/seed-pool.js';
import type { Trainable } from '../train/types.js';
import { decodeSafetensors, encodeSafetensors } from '../tensors/safetensors.js';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import type { JsonObject } from '../store/store.js';
import type { TrainingMode, UpdateKind } from '../wire/messages.js';
import type { CoordinatorCore } from './core.js';
import { NotFoundError } from './errors.js';
import { packTensors, unpackTensors, type Layout } from './layout.js';
import type { RunConfig } from './run-config.js';
import { currentStrategyState, strategyDocument, type EssaRefs, type StrategyDocument, type StrategyState } from './run-strategy.js';
import type { RunContext } from './runs.js';

export const SEED_SCALARS = 'seed_scalars';
export const FITNESS = 'fitness';
export const SEED_POOL = 'seed_pool';
/** ClientUpdate.clientId of the ESSA generation's combined update. */
export const ESSA_POPULATION = 'essa-population';

/** The upload kind each training mode answers with (fleet.proto UpdateKind). */
export const KIND_OF_MODE: Readonly<Partial<Record<TrainingMode, UpdateKind>>> = Object.freeze({
  TRAINING_MODE_BACKPROP: 'UPDATE_KIND_DENSE',
  TRAINING_MODE_MEZO_DENSE: 'UPDATE_KIND_DENSE',
  TRAINING_MODE_MEZO_SEEDS: 'UPDATE_KIND_SEED_SCALARS',
  TRAINING_MODE_ESSA: 'UPDATE_KIND_ESSA_FITNESS',
});

/** Tensors clients train under the run's aggregation: FFA freezes every lora_A. */
export function trainableOf(config: RunConfig): Trainable {
  return config.aggregation === 'ffa' ? 'ffa' : 'lora';
}

/** The public string the run's K candidate seeds derive from (task.proto MezoParams.pool_seed). */
export function poolSeedOf(ctx: RunContext): string {
  return `${ctx.config.seed}/${ctx.id}`;
}

const seedCache = new WeakMap<RunContext, Uint32Array>();

/** The run's K candidate seeds (derived once per run context). */
export function runSeeds(ctx: RunContext): Uint32Array {
  let seeds = seedCache.get(ctx);
  if (!seeds) {
    seeds = candidateSeeds(poolSeedOf(ctx), ctx.config.local.seedPoolK);
    seedCache.set(ctx, seeds);
  }
  return seeds;
}

/** ESSA's hyper-parameters for the run; the whole singular spectrum is searched. */
export function essaConfigOf(config: RunConfig): EssaConfig {
  return Object.freeze({ ...DEFAULT_ESSA, sigma: config.local.essaSigma, lr: config.local.essaLr, topFraction: 1 });
}

/** The member seeds one ESSA client evaluates in one round: its own pairs, fixed by run, round and client. */
export function essaMemberSeeds(ctx: RunContext, round: number, clientId: string): number[] {
  return generationSeeds(`${ctx.config.seed}/${ctx.id}/${clientId}`, round, ctx.config.local.essaPairs);
}

/** Layout of the ESSA basis payload clients fetch. */
export function essaBasisLayout(ctx: RunContext): Layout {
  return essaBasisShapes(ctx.layout.adapter, essaConfigOf(ctx.config).topFraction);
}

export function seedPoolLayout(ctx: RunContext): Layout {
  return new Map([[SEED_POOL, [ctx.config.local.seedPoolK]]]);
}

/** The tensors an upload of `kind` must hold (names and shapes), in payload order. */
export function uploadLayoutOf(ctx: RunContext, kind: UpdateKind): Layout {
  switch (kind) {
    case 'UPDATE_KIND_SEED_SCALARS':
      return new Map([[SEED_SCALARS, [ctx.config.local.seedPoolK]]]);
    case 'UPDATE_KIND_ESSA_FITNESS':
      return new Map([[FITNESS, [ctx.config.local.essaPairs, 2]]]);
    default:
      return ctx.layout.upload;
  }
}

/**
 * The update record keeps its kind among its metrics under this key (the fleet.proto enum number), written by the
 * coordinator at ingest (a client-sent value is overwritten), so the round close knows how to read each blob.
 */
export const UPDATE_KIND_METRIC = 'update_kind';
const KIND_CODES: readonly UpdateKind[] = ['UPDATE_KIND_UNSPECIFIED', 'UPDATE_KIND_DENSE', 'UPDATE_KIND_SEED_SCALARS', 'UPDATE_KIND_ESSA_FITNESS'];

export function kindCode(kind: UpdateKind): number {
  return KIND_CODES.indexOf(kind);
}

/** The kind recorded with an update; records from before kinds were recorded are dense. */
export function kindOfMetrics(metrics: Readonly<Record<string, unknown>>): UpdateKind {
  const code = metrics[UPDATE_KIND_METRIC];
  return typeof code === 'number' && code >= 1 ? (KIND_CODES[code] ?? 'UPDATE_KIND_DENSE') : 'UPDATE_KIND_DENSE';
}

/** δ = replay(global, scalars) − global over the run's travelling tensors: what a seed upload means as a dense delta. */
export function seedScalarsDelta(ctx: RunContext, global: TensorMap, scalars: Float32Array): Map<string, HostTensor> {
  const trained = replay(global, trainableOf(ctx.config), scalars, runSeeds(ctx), ctx.config.local.mezoLr);
  const out = new Map<string, HostTensor>();
  for (const name of ctx.layout.upload.keys()) {
    const t = trained.get(name)!;
    const g = global.get(name)!;
    const d = new Float32Array(t.data.length);
    for (let i = 0; i < d.length; i++) d[i] = t.data[i]! - g.data[i]!;
    out.set(name, { shape: [...t.shape], data: d });
  }
  return out;
}

async function blob(core: CoordinatorCore, sha256: string, what: string): Promise<Uint8Array> {
  const bytes = await core.store.blobs.get(sha256);
  if (!bytes) throw new NotFoundError(`${what} ${sha256} is missing from the blob store`);
  return bytes;
}

export async function loadEssaState(core: CoordinatorCore, refs: EssaRefs): Promise<EssaState> {
  return essaStateFromTensors(decodeSafetensors(await blob(core, refs.state, 'ESSA state')).tensors);
}

/** Stores the ESSA state and its basis payload; the basis blob is content-addressed, so re-storing it is free. */
export async function storeEssaState(core: CoordinatorCore, ctx: RunContext, state: EssaState): Promise<EssaRefs> {
  const stateBlob = await core.store.blobs.put(encodeSafetensors(essaStateTensors(state)));
  const basisBlob = await core.store.blobs.put(packTensors(essaBasisTensors(state), essaBasisLayout(ctx)));
  return { state: stateBlob.sha256, basis: basisBlob.sha256 };
}

/** A fresh ESSA state from the round's start adapter (see the module comment). */
export async function initEssa(core: CoordinatorCore, ctx: RunContext, start: TensorMap): Promise<EssaRefs> {
  return storeEssaState(core, ctx, essaInit(start, essaConfigOf(ctx.config)));
}

/**
 * Makes sure the run has an ESSA state before round `round` opens with an ESSA client in it: initialised from the
 * run's current adapter (the round's start) and recorded as part of the state after the previous aggregation, so
 * the round's tasks and its close read the same state, also after a restart.
 */
export async function prepareEssa(core: CoordinatorCore, ctx: RunContext, round: number): Promise<void> {
  const doc = (await core.store.runs.getStrategyState(ctx.id)) as unknown as StrategyDocument | undefined;
  const state = currentStrategyState(doc as unknown as JsonObject | undefined, (r) => r < round);
  if (state.essa) return;
  const run = await core.store.runs.get(ctx.id);
  if (!run?.globalAdapterSha) throw new NotFoundError(`run ${ctx.id} has no global adapter`);
  const start = unpackTensors(await blob(core, run.globalAdapterSha, 'global adapter'), ctx.layout.adapter);
  const essa = await initEssa(core, ctx, start);
  await core.store.runs.putStrategyState(ctx.id, strategyDocument(doc?.round ?? 0, doc?.before ?? {}, { ...state, essa }));
}

/** One stored upload as the round close reads it back. */
export interface StoredUpdate {
  readonly clientId: string;
  readonly numExamples: number;
  readonly kind: UpdateKind;
  /** The upload's tensors, in the layout of its kind. */
  readonly tensors: Map<string, HostTensor>;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface DenseRound {
  /** One ClientUpdate per dense or seed upload, plus one for the ESSA generation when there was one. */
  readonly results: ClientUpdate[];
  /** The ESSA state after this round's generation (undefined when no ESSA upload arrived). */
  readonly essa: EssaState | undefined;
  /** Σ_k w_k local_k over the round's seed uploads when every upload was one (the pool increment), else undefined. */
  readonly poolIncrement: Float64Array | undefined;
}

function meanMetrics(updates: readonly StoredUpdate[]): Record<string, number> {
  const sums = new Map<string, { sum: number; n: number }>();
  for (const u of updates) {
    for (const [k, v] of Object.entries(u.metrics)) {
      const s = sums.get(k) ?? { sum: 0, n: 0 };
      sums.set(k, { sum: s.sum + v, n: s.n + 1 });
    }
  }
  return Object.fromEntries([...sums].map(([k, s]) => [k, s.sum / s.n]));
}

/**
 * Turns a round's uploads into the dense ClientUpdates the strategy aggregates (see the module comment). `essa` is the
 * ESSA state before the round; needed when an ESSA upload is among `updates`.
 */
export function denseRound(ctx: RunContext, round: number, global: TensorMap, updates: readonly StoredUpdate[], essa: EssaState | undefined, weighting: 'examples' | 'equal'): DenseRound {
  const results: ClientUpdate[] = [];
  const essaUpdates: StoredUpdate[] = [];
  for (const u of updates) {
    if (u.kind === 'UPDATE_KIND_ESSA_FITNESS') {
      essaUpdates.push(u);
      continue;
    }
    const delta = u.kind === 'UPDATE_KIND_SEED_SCALARS' ? seedScalarsDelta(ctx, global, u.tensors.get(SEED_SCALARS)!.data) : u.tensors;
    results.push({ clientId: u.clientId, numExamples: u.numExamples, delta, metrics: u.metrics });
  }

  let poolIncrement: Float64Array | undefined;
  if (updates.length > 0 && essaUpdates.length === 0 && updates.every((u) => u.kind === 'UPDATE_KIND_SEED_SCALARS')) {
    poolIncrement = new Float64Array(ctx.config.local.seedPoolK);
    const w = roundWeights(results, weighting);
    updates.forEach((u, k) => {
      const local = u.tensors.get(SEED_SCALARS)!.data;
      for (let s = 0; s < local.length; s++) poolIncrement![s]! += w[k]! * local[s]!;
    });
  }

  let next: EssaState | undefined;
  if (essaUpdates.length > 0) {
    if (!essa) throw new NotFoundError(`run ${ctx.id} round ${round} has ESSA uploads but no ESSA state`);
    const records: EssaRecord[] = [];
    for (const u of essaUpdates) {
      const rows = u.tensors.get(FITNESS)!.data;
      essaMemberSeeds(ctx, round, u.clientId).forEach((seed, i) => records.push({ seed, fPlus: rows[2 * i]!, fMinus: rows[2 * i + 1]! }));
    }
    const step = essaStep(essa, global, records, essaConfigOf(ctx.config));
    next = step.state;
    const delta = new Map<string, HostTensor>();
    for (const [name, shape] of ctx.layout.upload) {
      delta.set(name, step.delta.get(name) ?? { shape: [...shape], data: new Float32Array(global.get(name)!.data.length) });
    }
    const numExamples = essaUpdates.reduce((s, u) => s + u.numExamples, 0);
    results.push({ clientId: ESSA_POPULATION, numExamples, delta, metrics: meanMetrics(essaUpdates) });
  }
  return { results, essa: next, poolIncrement };
}

/** Whether FedKSeed's pool can reproduce the run's adapter at all (linear aggregation, no server-side noise). */
export function poolReplayable(config: RunConfig): boolean {
  const linear = config.aggregation !== 'exact' && config.serverOptimizer.kind === 'fedavg' && config.serverOptimizer.lr === 1;
  return linear && (config.privacy === undefined || config.privacy.mode === 'sample');
}

/**
 * The pool after this round: the previous pool plus the round's increment (float64 sum, rounded once to float32),
 * 'invalid' once a round was not a pure seed round (see the module comment), unchanged when nothing was aggregated.
 */
export async function nextSeedPool(core: CoordinatorCore, ctx: RunContext, before: StrategyState, increment: Float64Array | undefined): Promise<string | undefined> {
  if (!poolReplayable(ctx.config) || before.seedPool === 'invalid') return 'invalid';
  if (!increment) return 'invalid';
  const pool = new Float32Array(increment.length);
  if (before.seedPool) {
    const prev = new Float32Array((await blob(core, before.seedPool, 'seed pool')).slice().buffer);
    for (let s = 0; s < pool.length; s++) pool[s] = prev[s]! + increment[s]!;
  } else {
    for (let s = 0; s < pool.length; s++) pool[s] = increment[s]!;
  }
  const layout = seedPoolLayout(ctx);
  return (await core.store.blobs.put(packTensors(new Map([[SEED_POOL, { shape: [pool.length], data: pool }]]), layout))).sha256;
}
