/**
 * Moves one run through its rounds. Every step starts from the store, never from memory, so the same code resumes a
 * run after a crash: an open round past its deadline (or with every sampled client in) is aggregated from the stored
 * updates, a round left aggregating is aggregated again, and otherwise the next round opens.
 *
 * Opening a round: wait until at least min_clients clients are live, sample them (seedrandom seeded by run seed, run
 * id and round, over the candidates in id order), reserve the round's privacy release in the ledger (a refusal stops
 * the run as budget_exhausted before anything starts), then open it in the store. Steps run one at a time per run.
 *
 * With several coordinators, only the one holding the run's lease (src/cluster/leases.ts) steps it; the others poll
 * the lease and take over when it goes stale. The leader fences (re-checks its lease by compare-and-set) right before
 * every state change: opening, closing or failing a round, appending to the ledger, finishing the run. What it does
 * is announced on the event bus (round.started, round.aggregated, round.failed, run.state).
 */
import seedrandom from 'seedrandom';
import { LeaseLostError } from '../cluster/errors.js';
import { crashPointForTests } from '../privacy/crash-point.js';
import { BudgetExceededError } from '../privacy/errors.js';
import type { RoundRecord } from '../store/store.js';
import type { TensorMap } from '../tensors/host.js';
import { chargeRound, refreshBudget } from './budget.js';
import type { CoordinatorCore } from './core.js';
import { announce } from './peers.js';
import { prepareEssa } from './forward-only.js';
import { closeRound, prepareOutput } from './round-close.js';
import type { RunCandidate, RunContext, RunRegistry } from './runs.js';
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
  /** The last step failure logged, so an outage logs once rather than once a second. */
  private lastFailure = '';

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
      .then(async () => {
        this.pending = false;
        await this.step();
        this.lastFailure = '';
      })
      .catch((err: unknown) => {
        if (this.stopped || this.core.lifecycle.closed) return;
        if (err instanceof LeaseLostError) {
          // Another coordinator leads the run now (its own log says so); follow it.
          this.after(this.core.leases.pollMs);
          return;
        }
        const error = err instanceof Error ? err : new Error(String(err));
        if (error.message !== this.lastFailure) {
          this.lastFailure = error.message;
          this.core.config.log(`run ${this.runId}: step failed: ${error.message}`);
        }
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
    if (!run || (run.state !== 'pending' && run.state !== 'running')) {
      await this.core.leases.release(this.runId); // nothing to drive: let whoever resumes it lead at once
      return;
    }
    if (!(await this.core.leases.lead(this.runId))) {
      this.after(this.core.leases.pollMs); // another coordinator leads: watch for its lease going stale
      return;
    }
    if (run.state === 'pending') {
      await this.fence();
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
      await this.fence();
      if (await store.runs.transition(this.runId, 'running', 'completed', { message })) {
        this.core.config.log(`run ${this.runId}: completed (${message})`);
        this.core.events.emit({ type: 'run_finished', runId: this.runId, state: 'completed', message });
        announce(this.core, { type: 'run.state', runId: this.runId, state: 'completed', message });
      }
      await this.core.leases.release(this.runId);
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
    let sampled: readonly RunCandidate[] = sampleClients(candidates, config.sampling, () => rand());
    if (ctx.plan && sampled.length > 0) {
      try {
        await refreshBudget(this.core, ctx); // RaiseBudget may have reached another coordinator
        sampled = await chargeRound(this.core, ctx, round, sampled, () => this.fence());
        crashPointForTests('ledger-record', round);
      } catch (err) {
        if (!(err instanceof BudgetExceededError)) throw err;
        const left = err.shortfall.remainingEpsilon;
        const message =
          `privacy budget exhausted before round ${round}: ε ${err.shortfall.spentEpsilon.toFixed(4)} of ${err.shortfall.budgetEpsilon} spent, ` +
          `ε ${left.toFixed(4)} left, the round would cost ε ${err.shortfall.releaseCost.toFixed(4)}; raise the budget (RaiseBudget) to resume`;
        await this.fence();
        if (await this.core.store.runs.transition(ctx.id, 'running', 'budget_exhausted', { message })) {
          this.core.config.log(`run ${ctx.id}: ${message}`);
          this.core.events.emit({ type: 'run_finished', runId: ctx.id, state: 'budget_exhausted', message });
          announce(this.core, { type: 'run.state', runId: ctx.id, state: 'budget_exhausted', message });
        }
        await this.core.leases.release(ctx.id);
        return;
      }
    }
    await this.fence();
    if (sampled.some((c) => c.mode === 'essa')) await prepareEssa(this.core, ctx, round);
    const record = await this.core.store.rounds.open({
      runId: ctx.id,
      round,
      sampledClientIds: sampled.map((c) => c.id),
      expectedClients: expectedParticipants(candidates.length, config.sampling),
      deadlineAt: this.core.config.clock() + Math.round(config.roundDeadlineS * 1000),
    });
    this.core.config.log(`run ${ctx.id}: round ${round} open, ${sampled.length} of ${candidates.length} live clients sampled`);
    this.core.events.emit({ type: 'round_opened', runId: ctx.id, round, sampled: sampled.length });
    announce(this.core, { type: 'round.started', runId: ctx.id, round, sampledClientIds: record.sampledClientIds, deadlineAt: record.deadlineAt });
    if (sampled.length < config.minClients) {
      await this.fail(record, `only ${sampled.length} clients sampled; min_clients is ${config.minClients}`);
      this.kick();
      return;
    }
    this.runs.scratch(ctx.id, round).output = prepareOutput(this.core, ctx);
    this.core.presence.notify(record.sampledClientIds);
    this.after(record.deadlineAt - this.core.config.clock());
  }

  private async close(ctx: RunContext, round: RoundRecord): Promise<void> {
    const scratch = this.runs.scratch(round.runId, round.round);
    try {
      await this.fence();
    } catch (err) {
      scratch.output = undefined; // another coordinator closes the round: its memory is not needed here
      throw err;
    }
    const result = await closeRound(this.core, ctx, round, scratch);
    this.runs.dropScratch(round.runId, round.round);
    if (result.kind === 'failed') {
      this.core.config.log(`run ${ctx.id}: round ${round.round} failed: ${result.reason}`);
      this.core.events.emit({ type: 'round_failed', runId: ctx.id, round: round.round, reason: result.reason });
      announce(this.core, { type: 'round.failed', runId: ctx.id, round: round.round, reason: result.reason });
      return;
    }
    if (result.kind === 'lost') return; // another step got there first
    this.core.config.log(`run ${ctx.id}: round ${round.round} closed with ${result.accepted} updates`);
    this.core.events.emit({ type: 'round_closed', runId: ctx.id, round: round.round, accepted: result.accepted, metrics: result.metrics });
    const adapterSha = (await this.core.store.rounds.get(ctx.id, round.round))?.adapterShaAfter ?? null;
    announce(this.core, { type: 'round.aggregated', runId: ctx.id, round: round.round, accepted: result.accepted, adapterSha, metrics: result.metrics });
    const evaluation = await this.evaluator.evaluate(ctx, result.global);
    if (evaluation) await this.core.store.rounds.mergeMetrics(ctx.id, round.round, { ...evaluation });
  }

  private async fail(round: RoundRecord, reason: string): Promise<void> {
    await this.fence();
    if (await this.core.store.rounds.fail(round.runId, round.round, reason)) {
      this.core.config.log(`run ${round.runId}: round ${round.round} failed: ${reason}`);
      this.core.events.emit({ type: 'round_failed', runId: round.runId, round: round.round, reason });
      announce(this.core, { type: 'round.failed', runId: round.runId, round: round.round, reason });
    }
  }

  /** Throws LeaseLostError unless this coordinator still leads the run (checked against NATS, renewing the lease). */
  private fence(): Promise<void> {
    return this.core.leases.fence(this.runId);
  }
}
