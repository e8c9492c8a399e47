/**
 * Tasks (task.proto) are derived, not stored: a client has a task when a running run's current round is open, the
 * client was sampled in it, and it has neither uploaded nor reported failure. The task id is "<run>/<round>/<client>",
 * so every coordinator (and a restarted one) hands out the same task for the same assignment.
 */
import { createHash } from 'node:crypto';
import type { ClientRecord, RoundRecord } from '../store/store.js';
import type { AggregationMode, EssaParams, MezoParams, PrivacyInstructions, Task, TrainingMode } from '../wire/messages.js';
import type { CoordinatorCore } from './core.js';
import { InvalidRequestError } from './errors.js';
import { essaConfigOf, essaMemberSeeds, KIND_OF_MODE, poolSeedOf, uploadLayoutOf } from './forward-only.js';
import { currentStrategyState, privacyInstructions, type StrategyState } from './run-strategy.js';
import { modeFor, type RunContext, type RunRegistry } from './runs.js';
import { buildUnlearningTask, currentUnlearning } from './unlearning-tasks.js';

export function taskId(runId: string, round: number, clientId: string): string {
  return `${runId}/${round}/${clientId}`;
}

/** Parses a task id; InvalidRequestError when it is not one this coordinator issued. */
export function parseTaskId(id: string): { runId: string; round: number; clientId: string } {
  const m = /^(.+)\/(\d+)\/([^/]+)$/.exec(id);
  if (!m) throw new InvalidRequestError(`task_id ${JSON.stringify(id)} is not a task this coordinator issued`);
  return { runId: m[1]!, round: Number(m[2]), clientId: m[3]! };
}

const AGGREGATION_MODE: Readonly<Record<string, AggregationMode>> = Object.freeze({
  ffa: 'AGGREGATION_MODE_FFA',
  exact: 'AGGREGATION_MODE_EXACT',
  fedavg: 'AGGREGATION_MODE_FEDAVG',
});

/** A 32-bit seed for the client's non-private local randomness, fixed per task. */
function taskSeed(id: string): number {
  return createHash('sha256').update(id).digest().readUInt32LE(0);
}

function mezoParams(ctx: RunContext, seeds: boolean, state: StrategyState): MezoParams {
  const pool = seeds && state.seedPool !== undefined && state.seedPool !== 'invalid' ? Buffer.from(state.seedPool, 'hex') : Buffer.alloc(0);
  return {
    eps: ctx.config.local.mezoEps,
    seedPoolSize: seeds ? ctx.config.local.seedPoolK : 0,
    poolSeed: seeds ? poolSeedOf(ctx) : '',
    poolScalarsSha256: pool,
  };
}

/** The ESSA task: this client's member seeds and the basis (prepared when the round opened; see round-driver.ts). */
export function essaParams(ctx: RunContext, round: number, clientId: string, basisSha256: Buffer): EssaParams {
  const { local } = ctx.config;
  return {
    sigma: local.essaSigma,
    memberSeeds: essaMemberSeeds(ctx, round, clientId),
    topFraction: essaConfigOf(ctx.config).topFraction,
    fitness: local.essaFitness,
    evalExamples: local.essaEvalExamples,
    basisSha256,
  };
}

/** What a task takes from the coordinator's state; the rest follows from the run config (taskOf). */
export interface TaskParts {
  readonly training: TrainingMode;
  readonly deadlineMs: number;
  readonly adapterSha256: Buffer;
  readonly mezo: MezoParams | null;
  readonly essa: EssaParams | null;
  readonly privacy: PrivacyInstructions | null;
}

/** The task of `clientId` in `round` of `ctx`. Pure: benchmarks that simulate clients in process build theirs here. */
export function taskOf(ctx: RunContext, round: number, clientId: string, parts: TaskParts): Task {
  const { config } = ctx;
  const id = taskId(ctx.id, round, clientId);
  const mezo = parts.training === 'TRAINING_MODE_MEZO_DENSE' || parts.training === 'TRAINING_MODE_MEZO_SEEDS';
  return {
    taskId: id,
    runId: ctx.id,
    round,
    deadlineMs: parts.deadlineMs,
    mode: parts.training,
    adapterSha256: parts.adapterSha256,
    baseModel: config.baseModel,
    dataset: config.task,
    labels: [...config.labels],
    seqLen: config.seqLen,
    lora: {
      rank: config.lora.r,
      alpha: config.lora.alpha,
      targetModules: [...config.lora.targets],
      initSeed: config.lora.seed,
      aggregation: AGGREGATION_MODE[config.aggregation]!,
    },
    training: {
      steps: config.local.steps,
      batchSize: config.local.batchSize,
      learningRate: mezo ? config.local.mezoLr : config.local.lr,
      weightDecay: 0,
      seed: taskSeed(id),
    },
    mezo: parts.mezo,
    essa: parts.essa,
    privacy: parts.privacy,
    unlearning: null,
    uploadTensors: [...uploadLayoutOf(ctx, KIND_OF_MODE[parts.training]!).keys()],
  };
}

/** The open round of the run in which `clientId` still owes an update, if any. */
export async function pendingRound(core: CoordinatorCore, runs: RunRegistry, runId: string, clientId: string): Promise<RoundRecord | undefined> {
  const run = await core.store.runs.get(runId);
  if (!run || run.state !== 'running' || run.currentRound === 0) return undefined;
  const round = await core.store.rounds.get(runId, run.currentRound);
  if (!round || round.state !== 'open' || core.config.clock() >= round.deadlineAt) return undefined;
  if (!round.sampledClientIds.includes(clientId) || runs.scratch(runId, round.round).failures.has(clientId)) return undefined;
  if (await core.store.updates.get(runId, round.round, clientId)) return undefined;
  return round;
}

export async function buildTask(core: CoordinatorCore, ctx: RunContext, round: RoundRecord, client: ClientRecord): Promise<Task | undefined> {
  const candidate = modeFor(ctx, client);
  if (!candidate) return undefined; // its capabilities changed since it was sampled
  const { config, plan } = ctx;
  const state = currentStrategyState(await core.store.runs.getStrategyState(ctx.id), (r) => r < round.round);
  // ESSA since it was sampled (its capabilities changed): no generation was prepared for this round.
  if (candidate.mode === 'essa' && !state.essa) return undefined;
  const seeds = candidate.training === 'TRAINING_MODE_MEZO_SEEDS';
  return taskOf(ctx, round.round, client.id, {
    training: candidate.training,
    deadlineMs: round.deadlineAt,
    adapterSha256: Buffer.from(round.adapterShaBefore ?? '', 'hex'),
    mezo: candidate.mode === 'mezo' ? mezoParams(ctx, seeds, state) : null,
    essa: candidate.mode === 'essa' && state.essa ? essaParams(ctx, round.round, client.id, Buffer.from(state.essa.basis, 'hex')) : null,
    privacy: privacyInstructions(config, plan, state.clipNorm ?? plan?.clip ?? 0, candidate.numExamples),
  });
}

/**
 * The first task waiting for `client`: its unlearning request first (unlearning-tasks.ts), then running runs' rounds.
 * `assign` false (a heartbeat asking whether anything waits) leaves a queued unlearning request queued.
 */
export async function findTask(core: CoordinatorCore, runs: RunRegistry, client: ClientRecord, assign = true): Promise<Task | undefined> {
  const unlearning = await currentUnlearning(core, runs, client.id, assign);
  if (unlearning) return buildUnlearningTask(core, runs, unlearning, client);
  for (const run of await core.store.runs.list({ states: ['running'] })) {
    const round = await pendingRound(core, runs, run.id, client.id);
    if (!round) continue;
    const task = await buildTask(core, await runs.context(run.id), round, client);
    if (task) return task;
  }
  return undefined;
}
