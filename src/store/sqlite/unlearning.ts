/** SQLite table of unlearning requests and their life cycle (queued → assigned → training → verifying → active). */
import type Database from 'better-sqlite3';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { JsonObject, UnlearningRequestRecord, UnlearningState, UnlearningStore } from '../store.js';
import { checkEdge, UNLEARNING_EDGES, UNLEARNING_STATES } from '../transitions.js';
import { checkId, checkOneOf, checkSha256Hex, checkText, decodeJsonObject, encodeJsonObject } from '../validate.js';
import type { SqliteBlobs } from './blobs.js';
import type { SqliteContext } from './context.js';

interface RequestRow {
  id: string;
  client_id: string;
  selector: string;
  reason: string;
  state: UnlearningState;
  failure_reason: string | null;
  result_adapter_sha: string | null;
  created_at: number;
  updated_at: number;
}

function toRequest(row: RequestRow): UnlearningRequestRecord {
  return {
    id: row.id,
    clientId: row.client_id,
    selector: decodeJsonObject(row.selector),
    reason: row.reason,
    state: row.state,
    failureReason: row.failure_reason,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    resultAdapterSha: row.result_adapter_sha,
  };
}

export class SqliteUnlearning implements UnlearningStore {
  private readonly insert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly all: Database.Statement;
  private readonly cas: Database.Statement;
  private readonly clientExists: Database.Statement;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly blobs: SqliteBlobs,
  ) {
    const db = ctx.db;
    this.insert = db.prepare(
      `INSERT INTO unlearning_requests (id, client_id, selector, reason, state, created_at, updated_at)
       VALUES (?, ?, ?, ?, 'queued', ?, ?)`,
    );
    this.byId = db.prepare('SELECT * FROM unlearning_requests WHERE id = ?');
    this.all = db.prepare('SELECT * FROM unlearning_requests ORDER BY created_at, id');
    this.cas = db.prepare(
      `UPDATE unlearning_requests
       SET state = ?, updated_at = ?, failure_reason = coalesce(?, failure_reason),
           result_adapter_sha = coalesce(?, result_adapter_sha)
       WHERE id = ? AND state = ?`,
    );
    this.clientExists = db.prepare('SELECT 1 FROM clients WHERE id = ?');
  }

  create(request: { id: string; clientId: string; selector: JsonObject; reason: string }): Promise<UnlearningRequestRecord> {
    return this.ctx.write('create an unlearning request', () => {
      const id = checkId(request.id, 'unlearning request id');
      const clientId = checkId(request.clientId, 'client id');
      const selector = encodeJsonObject(request.selector, 'selector');
      const reason = checkText(request.reason, 'reason');
      if (this.clientExists.get(clientId) === undefined) throw new NotFoundError('client', clientId);
      if (this.byId.get(id) !== undefined) throw new ConflictError(`unlearning request ${id} already exists`, 'unlearning_id');
      const now = this.ctx.now();
      this.insert.run(id, clientId, selector, reason, now, now);
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

  list(options: { states?: readonly UnlearningState[]; clientId?: string } = {}): Promise<UnlearningRequestRecord[]> {
    return this.ctx.read('list unlearning requests', () => {
      const states = options.states?.map((s) => checkOneOf(s, 'unlearning state', UNLEARNING_STATES));
      const clientId = options.clientId === undefined ? undefined : checkId(options.clientId, 'client id');
      return (this.all.all() as RequestRow[])
        .filter((row) => (states === undefined || states.includes(row.state)) && (clientId === undefined || row.client_id === clientId))
        .map(toRequest);
    });
  }

  transition(
    id: string,
    from: UnlearningState,
    to: UnlearningState,
    detail: { failureReason?: string; resultAdapterSha?: string } = {},
  ): Promise<boolean> {
    return this.ctx.write('change an unlearning request state', () => {
      checkId(id, 'unlearning request id');
      checkEdge('unlearning request', UNLEARNING_STATES, UNLEARNING_EDGES, from, to);
      const failure = detail.failureReason === undefined ? null : checkText(detail.failureReason, 'failureReason');
      const sha = detail.resultAdapterSha === undefined ? null : checkSha256Hex(detail.resultAdapterSha, 'resultAdapterSha');
      if (to === 'failed' && failure === null) throw new InvalidArgumentError('a failed unlearning request needs a failureReason');
      if (to === 'active' && sha === null) throw new InvalidArgumentError('an active unlearning request needs its resultAdapterSha');
      if (sha !== null && !this.blobs.existsNow(sha)) throw new NotFoundError('blob', sha);
      if (this.cas.run(to, this.ctx.now(), failure, sha, id, from).changes === 1) return true;
      if (this.byId.get(id) === undefined) throw new NotFoundError('unlearning request', id);
      return false;
    });
  }
}
