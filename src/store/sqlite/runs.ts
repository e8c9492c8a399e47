/** SQLite table of training runs, and the per-run strategy / server-optimizer state. */
import type Database from 'better-sqlite3';
import { ConflictError, NotFoundError } from '../errors.js';
import type { JsonObject, RunRecord, RunState, RunStore } from '../store.js';
import { checkEdge, RUN_EDGES, RUN_STATES } from '../transitions.js';
import { checkId, checkOneOf, checkSha256Hex, checkText, decodeJsonObject, encodeJsonObject } from '../validate.js';
import type { SqliteBlobs } from './blobs.js';
import type { SqliteContext } from './context.js';

interface RunRow {
  id: string;
  config: string;
  state: RunState;
  current_round: number;
  global_adapter_sha: string | null;
  message: string | null;
  created_at: number;
  updated_at: number;
}

function toRun(row: RunRow): RunRecord {
  return {
    id: row.id,
    config: decodeJsonObject(row.config),
    state: row.state,
    currentRound: row.current_round,
    globalAdapterSha: row.global_adapter_sha,
    message: row.message,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export class SqliteRuns implements RunStore {
  private readonly insert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly all: Database.Statement;
  private readonly casState: Database.Statement;
  private readonly setAdapter: Database.Statement;
  private readonly setRound: Database.Statement;
  private readonly upsertState: Database.Statement;
  private readonly stateOf: Database.Statement;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly blobs: SqliteBlobs,
  ) {
    const db = ctx.db;
    this.insert = db.prepare(
      `INSERT INTO runs (id, config, state, current_round, global_adapter_sha, created_at, updated_at)
       VALUES (?, ?, 'pending', 0, ?, ?, ?)`,
    );
    this.byId = db.prepare('SELECT * FROM runs WHERE id = ?');
    this.all = db.prepare('SELECT * FROM runs ORDER BY created_at, id');
    this.casState = db.prepare('UPDATE runs SET state = ?, message = ?, updated_at = ? WHERE id = ? AND state = ?');
    this.setAdapter = db.prepare('UPDATE runs SET global_adapter_sha = ?, updated_at = ? WHERE id = ?');
    this.setRound = db.prepare('UPDATE runs SET current_round = ?, updated_at = ? WHERE id = ?');
    this.upsertState = db.prepare(
      `INSERT INTO strategy_state (run_id, state, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
    );
    this.stateOf = db.prepare('SELECT state FROM strategy_state WHERE run_id = ?');
  }

  create(run: { id: string; config: JsonObject; globalAdapterSha?: string }): Promise<RunRecord> {
    return this.ctx.write('create a run', () => {
      const id = checkId(run.id, 'run id');
      const config = encodeJsonObject(run.config, 'run config');
      const sha = run.globalAdapterSha === undefined ? null : checkSha256Hex(run.globalAdapterSha, 'globalAdapterSha');
      if (this.byId.get(id) !== undefined) throw new ConflictError(`run ${id} already exists`, 'run_id');
      if (sha !== null) this.requireBlob(sha);
      const now = this.ctx.now();
      this.insert.run(id, config, sha, now, now);
      return toRun(this.byId.get(id) as RunRow);
    });
  }

  get(id: string): Promise<RunRecord | undefined> {
    return this.ctx.read('read a run', () => {
      checkId(id, 'run id');
      const row = this.byId.get(id) as RunRow | undefined;
      return row && toRun(row);
    });
  }

  list(options: { states?: readonly RunState[] } = {}): Promise<RunRecord[]> {
    return this.ctx.read('list runs', () => {
      const states = options.states?.map((s) => checkOneOf(s, 'run state', RUN_STATES));
      const rows = this.all.all() as RunRow[];
      return rows.filter((row) => states === undefined || states.includes(row.state)).map(toRun);
    });
  }

  transition(id: string, from: RunState, to: RunState, detail: { message?: string } = {}): Promise<boolean> {
    return this.ctx.write('change a run state', () => {
      checkId(id, 'run id');
      checkEdge('run', RUN_STATES, RUN_EDGES, from, to);
      const message = detail.message === undefined ? null : checkText(detail.message, 'run message');
      if (this.casState.run(to, message, this.ctx.now(), id, from).changes === 1) return true;
      this.require(id);
      return false;
    });
  }

  setGlobalAdapter(id: string, sha256: string): Promise<void> {
    return this.ctx.write('set the global adapter', () => {
      checkId(id, 'run id');
      checkSha256Hex(sha256, 'global adapter sha256');
      this.require(id);
      this.requireBlob(sha256);
      this.setAdapter.run(sha256, this.ctx.now(), id);
    });
  }

  putStrategyState(id: string, state: JsonObject): Promise<void> {
    return this.ctx.write('save strategy state', () => {
      checkId(id, 'run id');
      const text = encodeJsonObject(state, 'strategy state');
      this.require(id);
      this.upsertState.run(id, text, this.ctx.now());
    });
  }

  getStrategyState(id: string): Promise<JsonObject | undefined> {
    return this.ctx.read('read strategy state', () => {
      checkId(id, 'run id');
      const row = this.stateOf.get(id) as { state: string } | undefined;
      return row && decodeJsonObject(row.state);
    });
  }

  /** The run's row inside a transaction of a caller (rounds, ledger), or NotFoundError. */
  require(id: string): RunRecord {
    const row = this.byId.get(id) as RunRow | undefined;
    if (row === undefined) throw new NotFoundError('run', id);
    return toRun(row);
  }

  /** Points the run at a new global adapter inside a caller's transaction (closing a round). */
  setGlobalAdapterNow(id: string, sha256: string): void {
    this.setAdapter.run(sha256, this.ctx.now(), id);
  }

  /** Advances currentRound inside a caller's transaction (opening a round). */
  advanceRoundNow(id: string, round: number): void {
    this.setRound.run(round, this.ctx.now(), id);
  }

  requireBlob(sha256: string): void {
    if (!this.blobs.existsNow(sha256)) throw new NotFoundError('blob', sha256);
  }
}
