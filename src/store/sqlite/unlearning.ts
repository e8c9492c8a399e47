/** SQLite table of unlearning requests and their life cycle (queued → assigned → training → verifying → active). */
import type Database from 'better-sqlite3';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type {
  JsonObject,
  NewUnlearningRequest,
  UnlearningRequestRecord,
  UnlearningState,
  UnlearningStore,
} from '../store.js';
import { checkEdge, UNLEARNING_EDGES, UNLEARNING_STATES } from '../transitions.js';
import { checkId, checkOneOf, checkSha256Hex, checkText, decodeJsonObject, encodeJsonObject } from '../validate.js';
import type { SqliteBlobs } from './blobs.js';
import type { SqliteContext } from './context.js';
import type { SqliteRuns } from './runs.js';

interface RequestRow {
  id: string;
  run_id: string;
  idx: number;
  client_ids: string;
  selector: string;
  reason: string;
  state: UnlearningState;
  failure_reason: string | null;
  metrics: string;
  result_adapter_sha: string | null;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
}

function toRequest(row: RequestRow): UnlearningRequestRecord {
  return {
    id: row.id,
    runId: row.run_id,
    index: row.idx,
    clientIds: JSON.parse(row.client_ids) as string[],
    selector: decodeJsonObject(row.selector),
    reason: row.reason,
    state: row.state,
    failureReason: row.failure_reason,
    metrics: decodeJsonObject(row.metrics),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    completedAt: row.completed_at,
    resultAdapterSha: row.result_adapter_sha,
  };
}

export class SqliteUnlearning implements UnlearningStore {
  private readonly insert: Database.Statement;
  private readonly nextIndex: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly all: Database.Statement;
  private readonly update: Database.Statement;
  private readonly clientExists: Database.Statement;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly runs: SqliteRuns,
    private readonly blobs: SqliteBlobs,
  ) {
    const db = ctx.db;
    this.insert = db.prepare(
      `INSERT INTO unlearning_requests (id, run_id, idx, client_ids, selector, reason, state, metrics, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, 'queued', '{}', ?, ?)`,
    );
    this.nextIndex = db.prepare('SELECT coalesce(max(idx), 0) + 1 FROM unlearning_requests WHERE run_id = ?').pluck();
    this.byId = db.prepare('SELECT * FROM unlearning_requests WHERE id = ?');
    this.all = db.prepare('SELECT * FROM unlearning_requests ORDER BY created_at, run_id, idx');
    this.update = db.prepare(
      `UPDATE unlearning_requests
       SET state = ?, updated_at = ?, failure_reason = coalesce(?, failure_reason),
           result_adapter_sha = coalesce(?, result_adapter_sha), metrics = ?, completed_at = ?
       WHERE id = ? AND state = ?`,
    );
    this.clientExists = db.prepare('SELECT 1 FROM clients WHERE id = ?');
  }

  create(request: NewUnlearningRequest): Promise<UnlearningRequestRecord> {
    return this.ctx.write('create an unlearning request', () => {
      const id = checkId(request.id, 'unlearning request id');
      const runId = checkId(request.runId, 'run id');
      if (!Array.isArray(request.clientIds)) throw new InvalidArgumentError('clientIds must be an array of client ids');
      const clientIds = request.clientIds.map((c, i) => checkId(c, `clientIds[${i}]`));
      const selector = encodeJsonObject(request.selector, 'selector');
      const reason = checkText(request.reason, 'reason');
      this.runs.require(runId);
      for (const clientId of clientIds) {
        if (this.clientExists.get(clientId) === undefined) throw new NotFoundError('client', clientId);
      }
      if (this.byId.get(id) !== undefined) throw new ConflictError(`unlearning request ${id} already exists`, 'unlearning_id');
      const now = this.ctx.now();
      this.insert.run(id, runId, this.nextIndex.get(runId) as number, JSON.stringify(clientIds), selector, reason, now, now);
      return toRequest(this.byId.get(id) as RequestRow);
    });
  }

  get(id: string): Promise<UnlearningRequestRecord | undefined> {
    return this.ctx.read('read an unlearning request', () => {
      checkId(id, 'unlearning request id');
      const row = this.byId.get(id) as RequestRow | undefined;
      return row && toRequest(row);
    });
  }

  list(options: { runId?: string; states?: readonly UnlearningState[]; clientId?: string } = {}): Promise<UnlearningRequestRecord[]> {
    return this.ctx.read('list unlearning requests', () => {
      const runId = options.runId === undefined ? undefined : checkId(options.runId, 'run id');
      const states = options.states?.map((s) => checkOneOf(s, 'unlearning state', UNLEARNING_STATES));
      const clientId = options.clientId === undefined ? undefined : checkId(options.clientId, 'client id');
      return (this.all.all() as RequestRow[])
        .map(toRequest)
        .filter(
          (r) =>
            (runId === undefined || r.runId === runId) &&
            (states === undefined || states.includes(r.state)) &&
            (clientId === undefined || r.clientIds.includes(clientId)),
        );
    });
  }

  transition(
    id: string,
    from: UnlearningState,
    to: UnlearningState,
    detail: { failureReason?: string; resultAdapterSha?: string; metrics?: JsonObject } = {},
  ): Promise<boolean> {
    return this.ctx.write('change an unlearning request state', () => {
      checkId(id, 'unlearning request id');
      checkEdge('unlearning request', UNLEARNING_STATES, UNLEARNING_EDGES, from, to);
      const failure = detail.failureReason === undefined ? null : checkText(detail.failureReason, 'failureReason');
      const sha = detail.resultAdapterSha === undefined ? null : checkSha256Hex(detail.resultAdapterSha, 'resultAdapterSha');
      if (detail.metrics !== undefined) encodeJsonObject(detail.metrics, 'unlearning metrics');
      if (to === 'failed' && failure === null) throw new InvalidArgumentError('a failed unlearning request needs a failureReason');
      if (to === 'active' && sha === null) throw new InvalidArgumentError('an active unlearning request needs its resultAdapterSha');
      if (sha !== null && !this.blobs.existsNow(sha)) throw new NotFoundError('blob', sha);
      const row = this.byId.get(id) as RequestRow | undefined;
      if (row === undefined) throw new NotFoundError('unlearning request', id);
      if (row.state !== from) return false;
      const now = this.ctx.now();
      const metrics = JSON.stringify({ ...decodeJsonObject(row.metrics), ...detail.metrics });
      return this.update.run(to, now, failure, sha, metrics, to === 'active' ? now : null, id, from).changes === 1;
    });
  }
}
