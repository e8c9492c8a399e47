/**
 * SQLite tables of the privacy ledger and the per-run (ε, δ) budgets with their audit trail. Every write here is
 * durable (fsync'd before the promise resolves): a release must be on disk before its result is published
 * (ALGORITHMS.md §2), and a budget change must not be forgotten by a power cut.
 */
import type Database from 'better-sqlite3';
import { type LedgerEntry, type ReleaseKind, sameRelease } from '../../privacy/ledger.js';
import { checkEntry, seqConflict, tagConflict } from '../ledger.js';
import type { Budget, BudgetChange, BudgetStore, LedgerStoreContract } from '../store.js';
import { checkId, checkNumber, checkText } from '../validate.js';
import type { SqliteContext } from './context.js';
import type { SqliteRuns } from './runs.js';

interface LedgerRow {
  run_id: string;
  seq: number;
  round: number | null;
  kind: ReleaseKind;
  q: number;
  sigma: number;
  steps: number;
  at: number;
}

interface BudgetRow {
  run_id: string;
  epsilon: number;
  delta: number;
  updated_at: number;
}

interface BudgetChangeRow {
  run_id: string;
  seq: number;
  epsilon: number;
  delta: number;
  previous_epsilon: number | null;
  previous_delta: number | null;
  actor: string;
  reason: string;
  changed_at: number;
}

function toEntry(row: LedgerRow): LedgerEntry {
  return { runId: row.run_id, seq: row.seq, round: row.round, kind: row.kind, q: row.q, sigma: row.sigma, steps: row.steps, at: row.at };
}

function toBudget(row: BudgetRow): Budget {
  return { runId: row.run_id, epsilon: row.epsilon, delta: row.delta, updatedAt: row.updated_at };
}

function toChange(row: BudgetChangeRow): BudgetChange {
  return {
    runId: row.run_id,
    seq: row.seq,
    epsilon: row.epsilon,
    delta: row.delta,
    previousEpsilon: row.previous_epsilon,
    previousDelta: row.previous_delta,
    actor: row.actor,
    reason: row.reason,
    changedAt: row.changed_at,
  };
}

/**
 * The privacy ledger's storage (src/privacy/ledger.ts `LedgerStore`): append-only, fsync'd per entry, and idempotent
 * on the entry's tag (run, round, kind), which a unique index enforces. The tag and seq checks and the insert are one
 * write transaction, so of two processes on one file exactly one records a tag.
 */
export class SqliteLedger implements LedgerStoreContract {
  private readonly insert: Database.Statement;
  private readonly nextSeq: Database.Statement;
  private readonly byTag: Database.Statement;
  private readonly entriesOf: Database.Statement;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly runs: SqliteRuns,
  ) {
    const db = ctx.db;
    this.insert = db.prepare('INSERT INTO ledger (run_id, seq, round, kind, q, sigma, steps, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    this.nextSeq = db.prepare('SELECT coalesce(max(seq) + 1, 0) FROM ledger WHERE run_id = ?').pluck();
    this.byTag = db.prepare('SELECT * FROM ledger WHERE run_id = ? AND round = ? AND kind = ?');
    this.entriesOf = db.prepare('SELECT * FROM ledger WHERE run_id = ? ORDER BY seq');
  }

  append(entry: LedgerEntry): Promise<LedgerEntry> {
    return this.ctx.durable('append to the privacy ledger', () => {
      const checked = checkEntry(entry);
      const { runId, seq, round, kind } = checked;
      this.runs.require(runId);
      const recorded = round === null ? undefined : (this.byTag.get(runId, round, kind) as LedgerRow | undefined);
      if (recorded) {
        const existing = toEntry(recorded);
        if (sameRelease(existing, checked)) return existing;
        throw tagConflict(existing, checked);
      }
      const next = this.nextSeq.get(runId) as number;
      if (seq !== next) throw seqConflict(checked, next);
      this.insert.run(runId, seq, round, kind, checked.q, checked.sigma, checked.steps, checked.at);
      return checked;
    });
  }

  list(runId: string): Promise<LedgerEntry[]> {
    return this.ctx.read('read the privacy ledger', () => {
      checkId(runId, 'run id');
      return (this.entriesOf.all(runId) as LedgerRow[]).map(toEntry);
    });
  }
}

/** Per-run (ε, δ) budgets and their audit trail; every change is fsync'd. */
export class SqliteBudgets implements BudgetStore {
  private readonly upsertBudget: Database.Statement;
  private readonly budgetOf: Database.Statement;
  private readonly insertChange: Database.Statement;
  private readonly nextChangeSeq: Database.Statement;
  private readonly changesOf: Database.Statement;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly runs: SqliteRuns,
  ) {
    const db = ctx.db;
    this.upsertBudget = db.prepare(
      `INSERT INTO budgets (run_id, epsilon, delta, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (run_id) DO UPDATE SET epsilon = excluded.epsilon, delta = excluded.delta, updated_at = excluded.updated_at`,
    );
    this.budgetOf = db.prepare('SELECT * FROM budgets WHERE run_id = ?');
    this.insertChange = db.prepare(
      `INSERT INTO budget_changes (run_id, seq, epsilon, delta, previous_epsilon, previous_delta, actor, reason, changed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.nextChangeSeq = db.prepare('SELECT coalesce(max(seq), 0) + 1 AS seq FROM budget_changes WHERE run_id = ?').pluck();
    this.changesOf = db.prepare('SELECT * FROM budget_changes WHERE run_id = ? ORDER BY seq');
  }

  set(runId: string, budget: { epsilon: number; delta: number }, audit: { actor: string; reason: string }): Promise<Budget> {
    return this.ctx.durable('set a privacy budget', () => {
      checkId(runId, 'run id');
      const epsilon = checkNumber(budget.epsilon, 'epsilon', Number.MIN_VALUE);
      const delta = checkNumber(budget.delta, 'delta', Number.MIN_VALUE, 1 - Number.EPSILON);
      const actor = checkId(audit.actor, 'audit actor');
      const reason = checkText(audit.reason, 'audit reason');
      this.runs.require(runId);
      const previous = this.budgetOf.get(runId) as BudgetRow | undefined;
      const now = this.ctx.now();
      this.upsertBudget.run(runId, epsilon, delta, now);
      const seq = this.nextChangeSeq.get(runId) as number;
      this.insertChange.run(runId, seq, epsilon, delta, previous?.epsilon ?? null, previous?.delta ?? null, actor, reason, now);
      return { runId, epsilon, delta, updatedAt: now };
    });
  }

  get(runId: string): Promise<Budget | undefined> {
    return this.ctx.read('read a privacy budget', () => {
      checkId(runId, 'run id');
      const row = this.budgetOf.get(runId) as BudgetRow | undefined;
      return row && toBudget(row);
    });
  }

  history(runId: string): Promise<BudgetChange[]> {
    return this.ctx.read('read budget changes', () => {
      checkId(runId, 'run id');
      return (this.changesOf.all(runId) as BudgetChangeRow[]).map(toChange);
    });
  }
}
