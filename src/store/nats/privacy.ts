/**
 * The privacy ledger and the per-run (ε, δ) budgets in JetStream KV.
 *
 * Ledger: one key per entry, `<run>.<seq>`, written with kv.create at the run's next seq only. That makes the seq a
 * compare-and-set on the whole run's ledger: a writer reads the run's entries (a stream-ordered snapshot), checks the
 * entry's tag (run, round, kind) against them, and creates `<run>.<next>`; if another writer appended meanwhile, the
 * create fails (ConflictError 'ledger_seq') and the caller re-reads. So every stored entry was checked against all
 * entries before it: a tag is recorded once and budget cannot be spent twice. A write resolves when JetStream
 * acknowledges it, i.e. once the stream leader (and, with replicas, a quorum) has stored it. Whether that is fsync'd
 * depends on the server's `jetstream { sync_interval }` (deploy/ sets `always`). Entries written before tags existed
 * have no round and read back untagged (round null).
 *
 * Budgets: one document per run holding the current budget and its whole audit trail, so a change and its audit
 * entry are one compare-and-set.
 */
import type { KV } from 'nats';
import { type LedgerEntry, sameRelease, sameTag } from '../../privacy/ledger.js';
import { checkEntry, seqConflict, tagConflict } from '../ledger.js';
import type { Budget, BudgetChange, BudgetStore, LedgerStoreContract } from '../store.js';
import { checkId, checkNumber, checkText } from '../validate.js';
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

  append(entry: LedgerEntry): Promise<LedgerEntry> {
    return this.ctx.op('append to the privacy ledger', async () => {
      const checked = checkEntry(entry);
      await this.runs.require(checked.runId);
      const entries = await this.entries(checked.runId);
      const recorded = entries.find((e) => sameTag(e, checked));
      if (recorded) return sameOrConflict(recorded, checked);
      const next = entries.reduce((s, e) => Math.max(s, e.seq + 1), 0);
      if (checked.seq !== next) throw seqConflict(checked, next);
      const key = `${keyToken(checked.runId)}.${checked.seq}`;
      if ((await this.ctx.create(this.kv, key, checked)) !== undefined) return checked;
      // Another writer took this seq first; if it recorded this very charge (a retried append), that is success.
      const winner = (await this.ctx.get<LedgerEntry>(this.kv, key))?.doc;
      if (winner && sameTag(withRound(winner), checked)) return sameOrConflict(withRound(winner), checked);
      throw seqConflict(checked, next + 1);
    });
  }

  list(runId: string): Promise<LedgerEntry[]> {
    return this.ctx.op('read the privacy ledger', async () => this.entries(checkId(runId, 'run id')));
  }

  private async entries(runId: string): Promise<LedgerEntry[]> {
    const stored = await this.ctx.snapshot<LedgerEntry>(this.kv, `${keyToken(runId)}.*`);
    return [...stored.values()].map((e) => withRound(e.doc)).sort((a, b) => a.seq - b.seq);
  }
}

/** A stored entry with `round` made explicit: null on entries written before entries were tagged. */
function withRound(doc: LedgerEntry): LedgerEntry {
  return doc.round === undefined ? { ...doc, round: null } : doc;
}

function sameOrConflict(recorded: LedgerEntry, entry: LedgerEntry): LedgerEntry {
  if (sameRelease(recorded, entry)) return recorded;
  throw tagConflict(recorded, entry);
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
