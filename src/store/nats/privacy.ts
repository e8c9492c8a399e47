/**
 * The privacy ledger and the per-run (ε, δ) budgets in JetStream KV.
 *
 * Ledger: one key per entry, `<run>.<seq>`, written with kv.create, so of two writers that computed the same next
 * seq exactly one succeeds and the other gets ConflictError('ledger_seq'): budget cannot be spent twice. The write
 * resolves when JetStream acknowledges it, i.e. once the stream leader (and, with replicas, a quorum) has stored it.
 * Whether that is fsync'd depends on the server's `jetstream { sync_interval }` (deploy/ sets `always`).
 *
 * Budgets: one document per run holding the current budget and its whole audit trail, so a change and its audit
 * entry are one compare-and-set.
 */
import type { KV } from 'nats';
import type { LedgerEntry, ReleaseKind } from '../../privacy/ledger.js';
import { ConflictError } from '../errors.js';
import type { Budget, BudgetChange, BudgetStore, LedgerStoreContract } from '../store.js';
import { checkId, checkInt, checkNumber, checkText } from '../validate.js';
import { keyToken, type NatsContext } from './context.js';
import type { NatsRuns } from './runs.js';

interface BudgetDoc {
  readonly epsilon: number;
  readonly delta: number;
  readonly updatedAt: number;
  readonly changes: readonly BudgetChange[];
}

export class NatsLedger implements LedgerStoreContract {
  constructor(
    private readonly ctx: NatsContext,
    private readonly kv: KV,
    private readonly runs: NatsRuns,
  ) {}

  append(entry: LedgerEntry): Promise<void> {
    return this.ctx.op('append to the privacy ledger', async () => {
      const runId = checkId(entry.runId, 'run id');
      const seq = checkInt(entry.seq, 'ledger seq');
      const kind = checkId(entry.kind, 'ledger kind') as ReleaseKind;
      const q = checkNumber(entry.q, 'q', 0, 1);
      const sigma = checkNumber(entry.sigma, 'sigma', 0);
      const steps = checkInt(entry.steps, 'steps', 1);
      const at = checkInt(entry.at, 'ledger entry time');
      await this.runs.require(runId);
      const stored: LedgerEntry = { runId, seq, kind, q, sigma, steps, at };
      if ((await this.ctx.create(this.kv, `${keyToken(runId)}.${seq}`, stored)) === undefined) {
        throw new ConflictError(`ledger entry ${seq} of run ${runId} already exists; re-read the ledger and retry`, 'ledger_seq');
      }
    });
  }

  list(runId: string): Promise<LedgerEntry[]> {
    return this.ctx.op('read the privacy ledger', async () => {
      checkId(runId, 'run id');
      const entries = await this.ctx.snapshot<LedgerEntry>(this.kv, `${keyToken(runId)}.*`);
      return [...entries.values()].map((e) => e.doc).sort((a, b) => a.seq - b.seq);
    });
  }
}

export class NatsBudgets implements BudgetStore {
  constructor(
    private readonly ctx: NatsContext,
    private readonly kv: KV,
    private readonly runs: NatsRuns,
  ) {}

  set(runId: string, budget: { epsilon: number; delta: number }, audit: { actor: string; reason: string }): Promise<Budget> {
    return this.ctx.op('set a privacy budget', async () => {
      checkId(runId, 'run id');
      const epsilon = checkNumber(budget.epsilon, 'epsilon', Number.MIN_VALUE);
      const delta = checkNumber(budget.delta, 'delta', Number.MIN_VALUE, 1 - Number.EPSILON);
      const actor = checkId(audit.actor, 'audit actor');
      const reason = checkText(audit.reason, 'audit reason');
      await this.runs.require(runId);
      return this.ctx.mutate<BudgetDoc, Budget>(this.kv, keyToken(runId), 'set a privacy budget', (current) => {
        const previous = current?.doc;
        const changes = previous?.changes ?? [];
        const now = this.ctx.now();
        const change: BudgetChange = {
          runId,
          seq: changes.length + 1,
          epsilon,
          delta,
          previousEpsilon: previous?.epsilon ?? null,
          previousDelta: previous?.delta ?? null,
          actor,
          reason,
          changedAt: now,
        };
        return { result: { runId, epsilon, delta, updatedAt: now }, write: { epsilon, delta, updatedAt: now, changes: [...changes, change] } };
      });
    });
  }

  get(runId: string): Promise<Budget | undefined> {
    return this.ctx.op('read a privacy budget', async () => {
      checkId(runId, 'run id');
      const found = await this.ctx.get<BudgetDoc>(this.kv, keyToken(runId));
      return found && { runId, epsilon: found.doc.epsilon, delta: found.doc.delta, updatedAt: found.doc.updatedAt };
    });
  }

  history(runId: string): Promise<BudgetChange[]> {
    return this.ctx.op('read budget changes', async () => {
      checkId(runId, 'run id');
      return [...((await this.ctx.get<BudgetDoc>(this.kv, keyToken(runId)))?.doc.changes ?? [])];
    });
  }
}
