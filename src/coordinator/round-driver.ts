/**
 * Moves one run through its rounds. Every step starts from the store, never from memory, so the same code resumes a
 * run after a crash: an open round past its deadline (or with every sampled client in) is aggregated from the stored
 * updates, a round left aggregating is aggregated again, and otherwise the next round opens.
 *
 * Opening a round: wait until at least min_clients clients are live, sample them (seedrandom seeded by run seed, run
 * id and round, over the candidates in id order), reserve the round's privacy release in the ledger (a refusal stops
 * the run as budget_exhausted before anything starts), then open it in the store. Steps run one at a time per run.
 */
import seedrandom from 'seedrandom';
import { BudgetExceededError } from '../privacy/errors.js';
import type { RoundRecord } from '../store/store.js';
import type { TensorMap } from '../tensors/host.js';
import type { CoordinatorCore } from './core.js';
import { closeRound } from './round-close.js';
import { roundRelease } from './run-strategy.js';
import type { RunContext, RunRegistry } from './runs.js';
import { expectedParticipants, sampleClients } from './sampling.js';

/** Evaluates a run's new global adapter (eval accuracy and loss), or returns undefined when the run has no eval data. */
export interface RoundEvaluator {
  evaluate(ctx: RunContext, adapter: TensorMap): Promise<Readonly<Record<string, number>> | undefined>;
}

export class RunDriver {
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private pending = false;

  constructor(
    private readonly core: CoordinatorCore,
    private readonly runs: RunRegistry,
    readonly runId: string,
    private readonly evaluator: RoundEvaluator,
  ) {}

  /** Schedules a step (coalescing kicks that arrive while one is queued). */
  kick(): void {
    if (this.stopped || this.pending) return;
    this.pending = true;
    this.chain = this.chain
      .then(() => {
        this.pending = false;
        return this.step();
      })
      .catch((err: unknown) => {
        if (this.stopped || this.core.lifecycle.closed) return;
        const error = err instanceof Error ? err : new Error(String(err));
        this.core.config.log(`run ${this.runId}: step failed: ${error.message}`);
        this.core.events.emit({ type: 'error', error });
        this.after(this.core.config.waitForClientsMs);
      });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  idle(): Promise<void> {
    return this.chain;
  }

  /** Steps again after `ms` (at most an hour: a step re-reads the deadline anyway, and timers overflow past 2^31 ms). */
  private after(ms: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => this.kick(), Math.min(Math.max(0, ms), 3_600_000));
  }

  private async step(): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const { store, clock } = { store: this.core.store, clock: this.core.config.clock };
    let run = await store.runs.get(this.runId);
    if (run?.state === 'pending') {
      await store.runs.transition(this.runId, 'pending', 'running');
      run = await store.runs.get(this.runId);
    }
    if (!run || run.state !== 'running') return;
    const ctx = await this.runs.context(this.runId);
    const current = run.currentRound > 0 ? await store.rounds.get(this.runId, run.currentRound) : undefined;

    if (current?.state === 'open') {
      const now = clock();
      if (now >= current.deadlineAt || (await this.allIn(current))) {
        await this.close(ctx, current);
        this.kick();
      } else {
        this.after(current.deadlineAt - now);
      }
      return;
    }
    if (current?.state === 'aggregating') {
      await this.close(ctx, current);
      this.kick();
      return;
    }
    if (run.currentRound >= ctx.config.rounds) {
      const message = `all ${ctx.config.rounds} rounds done`;
      if (await store.runs.transition(this.runId, 'running', 'completed', { message })) {
        this.core.config.log(`run ${this.runId}: completed (${message})`);
        this.core.events.emit({ type: 'run_finished', runId: this.runId, state: 'completed', message });
      }
      return;
    }
    if (this.core.lifecycle.draining) return;
    await this.open(ctx, run.currentRound + 1);
  }

  /** Every sampled client either uploaded or reported that it cannot. */
  private async allIn(round: RoundRecord): Promise<boolean> {
    const scratch = this.runs.scratch(round.runId, round.round);
    if (round.updatesReceived + scratch.failures.size < round.sampledClientIds.length) return false;
    const uploaded = new Set((await this.core.store.updates.list(round.runId, round.round)).map((u) => u.clientId));
    return round.sampledClientIds.every((id) => uploaded.has(id) || scratch.failures.has(id));
  }

  private async open(ctx: RunContext, round: number): Promise<void> {
    const { config } = ctx;
    const candidates = await this.runs.candidates(ctx);
    if (candidates.length < config.minClients) {
      this.after(this.core.config.waitForClientsMs); // not enough live clients yet: look again soon
      return;
    }
    const rand = seedrandom(`${config.seed}/${ctx.id}/round/${round}`);
    const sampled = sampleClients(candidates, config.sampling, () => rand());
    if (ctx.plan && sampled.length > 0) {
      const release = roundRelease(config, ctx.plan, sampled.map((c) => c.numExamples));
      try {
        await this.core.ledger.reserve(ctx.id, release);
      } catch (err) {
        if (!(err instanceof BudgetExceededError)) throw err;
        const left = err.shortfall.remainingEpsilon;
        const message =
          `privacy budget exhausted before round ${round}: ε ${err.shortfall.spentEpsilon.toFixed(4)} of ${err.shortfall.budgetEpsilon} spent, ` +
          `ε ${left.toFixed(4)} left, the round would cost ε ${err.shortfall.releaseCost.toFixed(4)}; raise the budget (RaiseBudget) to resume`;
        if (await this.core.store.runs.transition(ctx.id, 'running', 'budget_exhausted', { message })) {
          this.core.config.log(`run ${ctx.id}: ${message}`);
          this.core.events.emit({ type: 'run_finished', runId: ctx.id, state: 'budget_exhausted', message });
        }
        return;
      }
    }
    const record = await this.core.store.rounds.open({
      runId: ctx.id,
      round,
      sampledClientIds: sampled.map((c) => c.id),
      expectedClients: expectedParticipants(candidates.length, config.sampling),
      deadlineAt: this.core.config.clock() + Math.round(config.roundDeadlineS * 1000),
    });
    this.core.config.log(`run ${ctx.id}: round ${round} open, ${sampled.length} of ${candidates.length} live clients sampled`);
    this.core.events.emit({ type: 'round_opened', runId: ctx.id, round, sampled: sampled.length });
    if (sampled.length < config.minClients) {
      await this.fail(record, `only ${sampled.length} clients sampled; min_clients is ${config.minClients}`);
      this.kick();
      return;
    }
    this.core.presence.notify(record.sampledClientIds);
    this.after(record.deadlineAt - this.core.config.clock());
  }

  private async close(ctx: RunContext, round: RoundRecord): Promise<void> {
    const result = await closeRound(this.core, ctx, round, this.runs.scratch(round.runId, round.round));
    this.runs.dropScratch(round.runId, round.round);
    if (result.kind === 'failed') {
      this.core.config.log(`run ${ctx.id}: round ${round.round} failed: ${result.reason}`);
      this.core.events.emit({ type: 'round_failed', runId: ctx.id, round: round.round, reason: result.reason });
      return;
    }
    if (result.kind === 'lost') return; // another step got there first
    this.core.config.log(`run ${ctx.id}: round ${round.round} closed with ${result.accepted} updates`);
    this.core.events.emit({ type: 'round_closed', runId: ctx.id, round: round.round, accepted: result.accepted, metrics: result.metrics });
    const evaluation = await this.evaluator.evaluate(ctx, result.global);
    if (evaluation) await this.core.store.rounds.mergeMetrics(ctx.id, round.round, { ...evaluation });
  }

  private async fail(round: RoundRecord, reason: string): Promise<void> {
    if (await this.core.store.rounds.fail(round.runId, round.round, reason)) {
      this.core.config.log(`run ${round.runId}: round ${round.round} failed: ${reason}`);
      this.core.events.emit({ type: 'round_failed', runId: round.runId, round: round.round, reason });
    }
  }
}
