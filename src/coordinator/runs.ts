/**
 * The coordinator's view of its runs: each run's parsed config, tensor layout and privacy plan (cached; derived from
 * the stored config, so a restart rebuilds them), the per-round scratch that need not survive a crash (failure
 * reports, bytes served), which clients can take part, and the driver that moves each run through its rounds.
 */
import type { ClientRecord, JsonObject } from '../store/store.js';
import type { Capabilities, TrainingMode } from '../wire/messages.js';
import type { CoordinatorCore } from './core.js';
import { NotFoundError } from './errors.js';
import { announce } from './peers.js';
import { resolveModelConfig, runLayout, type RunLayout } from './layout.js';
import { parseRunConfig, type LocalMode, type MezoUpload, type RunConfig } from './run-config.js';
import { privacyPlan, type PrivacyPlan } from './run-strategy.js';
import { assignMode, type Candidate } from './sampling.js';
import { RunDriver, type RoundEvaluator } from './round-driver.js';
import { unlearningExcluded } from './unlearning-tasks.js';

export interface RunContext {
  readonly id: string;
  readonly config: RunConfig;
  readonly layout: RunLayout;
  readonly plan: PrivacyPlan | undefined;
}

/** What a round keeps in memory only: losing it in a crash just means the round waits for its deadline. */
export interface RoundScratch {
  /** Clients that reported they cannot finish, with their reason. */
  readonly failures: Map<string, string>;
  /** Adapter bytes served to this round's clients. */
  bytesDown: number;
  /** Memory for the round's new global adapter, being faulted in while the clients train (round-close.ts prepareOutput). */
  output?: Promise<SharedArrayBuffer | undefined>;
}

/** A client that may be sampled, with what the task needs to know about it. */
export interface RunCandidate extends Candidate {
  readonly mode: LocalMode;
  /** The task's training mode: for MeZO, the upload form (dense delta or FedKSeed's seed scalars) too. */
  readonly training: TrainingMode;
  /** Capabilities.num_examples (0 = unknown). */
  readonly numExamples: number;
}

const MODE_OF: Readonly<Partial<Record<TrainingMode, LocalMode>>> = Object.freeze({
  TRAINING_MODE_BACKPROP: 'backprop',
  TRAINING_MODE_MEZO_DENSE: 'mezo',
  TRAINING_MODE_MEZO_SEEDS: 'mezo',
  TRAINING_MODE_ESSA: 'essa',
});

const MEZO_FORM: Readonly<Record<MezoUpload, TrainingMode>> = Object.freeze({
  dense: 'TRAINING_MODE_MEZO_DENSE',
  seeds: 'TRAINING_MODE_MEZO_SEEDS',
});

/**
 * Modes this coordinator aggregates for a run. Every update becomes a dense delta before the strategy runs (see
 * forward-only.ts), so all modes mix in one round; ESSA is left out under DP (its fitness uploads are not a release
 * the accountant covers; parseRunConfig refuses a DP config that names it).
 */
export function servedModes(config: RunConfig): LocalMode[] {
  return config.privacy ? ['backprop', 'mezo'] : ['backprop', 'mezo', 'essa'];
}

/**
 * The training mode for a client assigned `mode`. MeZO: the run's preferred upload form (local.mezo_upload) when the
 * client declared it (or declared no MeZO form at all), else the form it declared, so one run can mix both forms.
 */
export function trainingModeFor(mode: LocalMode, preferred: MezoUpload, declared: readonly TrainingMode[]): TrainingMode {
  if (mode === 'backprop') return 'TRAINING_MODE_BACKPROP';
  if (mode === 'essa') return 'TRAINING_MODE_ESSA';
  const wanted = MEZO_FORM[preferred];
  const other = MEZO_FORM[preferred === 'dense' ? 'seeds' : 'dense'];
  return !declared.includes(wanted) && declared.includes(other) ? other : wanted;
}

/** The stored capabilities of a client (they are stored as the decoded Capabilities message). */
export function capabilitiesOf(client: ClientRecord): Capabilities {
  const c = client.capabilities as unknown as Partial<Capabilities>;
  return {
    backend: c.backend ?? '',
    memoryBudgetBytes: c.memoryBudgetBytes ?? 0,
    modes: c.modes ?? [],
    maxSequenceLength: c.maxSequenceLength ?? 0,
    maxBatchSize: c.maxBatchSize ?? 0,
    numExamples: c.numExamples ?? 0,
    software: c.software ?? '',
    labels: c.labels ?? {},
  };
}

export function capabilitiesJson(c: Capabilities): JsonObject {
  return JSON.parse(JSON.stringify(c)) as JsonObject;
}

/** The mode `client` trains in under this run, or undefined when it cannot take part. */
export function modeFor(ctx: RunContext, client: ClientRecord): RunCandidate | undefined {
  const caps = capabilitiesOf(client);
  const declared = [...new Set(caps.modes.map((m) => MODE_OF[m]).filter((m): m is LocalMode => m !== undefined))];
  const candidate: Candidate = { id: client.id, memoryMb: caps.memoryBudgetBytes / (1 << 20), modes: declared };
  const mode = assignMode(candidate, ctx.config.local.mode, ctx.config.modes);
  if (mode === undefined || !servedModes(ctx.config).includes(mode)) return undefined;
  // Sample-level DP sets each client's Poisson rate from its data size, so an unknown size cannot be accounted.
  if (ctx.plan?.mode === 'sample' && !(caps.numExamples > 0)) return undefined;
  const training = trainingModeFor(mode, ctx.config.local.mezoUpload, caps.modes);
  // Local DP noises the dense update on the client; seed scalars have no such mechanism.
  if (training === 'TRAINING_MODE_MEZO_SEEDS' && ctx.plan?.mode === 'local') return undefined;
  return { ...candidate, mode, training, numExamples: caps.numExamples };
}

export class RunRegistry {
  private readonly contexts = new Map<string, Promise<RunContext>>();
  private readonly drivers = new Map<string, RunDriver>();
  private readonly scratches = new Map<string, RoundScratch>();

  constructor(
    private readonly core: CoordinatorCore,
    private readonly evaluator: RoundEvaluator,
  ) {}

  /** The run's derived context; NotFoundError for an unknown run. */
  context(runId: string): Promise<RunContext> {
    let ctx = this.contexts.get(runId);
    if (!ctx) {
      ctx = this.load(runId);
      this.contexts.set(runId, ctx);
      ctx.catch(() => this.contexts.delete(runId));
    }
    return ctx;
  }

  private async load(runId: string): Promise<RunContext> {
    const run = await this.core.store.runs.get(runId);
    if (!run) throw new NotFoundError(`run ${runId} does not exist; list runs with \`lethe status\``);
    const config = parseRunConfig(run.config);
    const layout = runLayout(await resolveModelConfig(config.baseModel), config);
    const plan = privacyPlan(config);
    if (plan) {
      const budget = await this.core.store.budgets.get(runId);
      this.core.ledger.setBudget(runId, budget ?? { epsilon: plan.epsilon, delta: plan.delta });
    }
    return Object.freeze({ id: runId, config, layout, plan });
  }

  scratch(runId: string, round: number): RoundScratch {
    const key = `${runId}/${round}`;
    let s = this.scratches.get(key);
    if (!s) {
      s = { failures: new Map(), bytesDown: 0 };
      this.scratches.set(key, s);
    }
    return s;
  }

  dropScratch(runId: string, round: number): void {
    this.scratches.delete(`${runId}/${round}`);
  }

  /**
   * Clients that may be sampled now: enrolled, not revoked, live, able to run a mode this run serves, and neither busy
   * with an unlearning request of the run nor gone from it by forgetting all their data (unlearning-tasks.ts).
   */
  async candidates(ctx: RunContext): Promise<RunCandidate[]> {
    const clients = await this.core.store.clients.list();
    const out: RunCandidate[] = [];
    const excluded = await unlearningExcluded(this.core, ctx.id);
    for (const c of clients) {
      if (c.revokedAt !== null || !this.core.presence.isOnline(c.id) || excluded.has(c.id)) continue;
      const candidate = modeFor(ctx, c);
      if (candidate) out.push(candidate);
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Abandons the client's pending tasks (it was revoked): open rounds stop waiting for it. */
  async abandonTasks(clientId: string, reason: string): Promise<void> {
    for (const run of await this.core.store.runs.list({ states: ['running'] })) {
      const round = run.currentRound > 0 ? await this.core.store.rounds.get(run.id, run.currentRound) : undefined;
      if (round?.state !== 'open' || !round.sampledClientIds.includes(clientId)) continue;
      this.scratch(run.id, round.round).failures.set(clientId, reason);
      announce(this.core, { type: 'task.failed', runId: run.id, round: round.round, clientId, reason });
      this.kick(run.id);
    }
  }

  /** Starts (or wakes) the run's driver. */
  kick(runId: string): void {
    if (this.core.lifecycle.closed) return;
    let driver = this.drivers.get(runId);
    if (!driver) {
      driver = new RunDriver(this.core, this, runId, this.evaluator);
      this.drivers.set(runId, driver);
    }
    driver.kick();
  }

  /** Wakes every run that may have work: at start, after a restart, when clients come online. */
  async kickActive(): Promise<void> {
    for (const run of await this.core.store.runs.list({ states: ['pending', 'running'] })) this.kick(run.id);
  }

  /** Stops every driver's timers; `idle()` then resolves once their current step finished. */
  stopAll(): void {
    for (const d of this.drivers.values()) d.stop();
  }

  async idle(): Promise<void> {
    await Promise.all([...this.drivers.values()].map((d) => d.idle()));
  }
}
