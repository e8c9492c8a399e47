/**
 * SQLite tables of federated rounds and the client updates they accept. The multi-row changes (open a round and
 * advance the run; accept an update and bump the round's counters; close a round and move the run's global adapter)
 * each happen in one transaction.
 */
import type Database from 'better-sqlite3';
import { ConflictError, InvalidArgumentError, InvalidTransitionError, NotFoundError } from '../errors.js';
import type { JsonObject, NewRound, NewUpdate, RoundRecord, RoundState, RoundStore, UpdateRecord, UpdateStore } from '../store.js';
import { checkEdge, ROUND_EDGES, ROUND_STATES } from '../transitions.js';
import {
  checkId,
  checkInt,
  checkNumber,
  checkSha256Hex,
  checkText,
  decodeJsonObject,
  encodeJsonObject,
} from '../validate.js';
import type { SqliteContext } from './context.js';
import type { SqliteRuns } from './runs.js';

interface RoundRow {
  run_id: string;
  round: number;
  state: RoundState;
  sampled_client_ids: string;
  expected_clients: number;
  started_at: number;
  deadline_at: number;
  closed_at: number | null;
  metrics: string;
  adapter_sha_before: string | null;
  adapter_sha_after: string | null;
  updates_received: number;
  examples_received: number;
}

interface UpdateRow {
  run_id: string;
  round: number;
  client_id: string;
  sha256: string;
  num_examples: number;
  metrics: string;
  received_at: number;
}

function toRound(row: RoundRow): RoundRecord {
  return {
    runId: row.run_id,
    round: row.round,
    state: row.state,
    sampledClientIds: JSON.parse(row.sampled_client_ids) as string[],
    expectedClients: row.expected_clients,
    startedAt: row.started_at,
    deadlineAt: row.deadline_at,
    closedAt: row.closed_at,
    metrics: decodeJsonObject(row.metrics),
    adapterShaBefore: row.adapter_sha_before,
    adapterShaAfter: row.adapter_sha_after,
    updatesReceived: row.updates_received,
    examplesReceived: row.examples_received,
  };
}

function toUpdate(row: UpdateRow): UpdateRecord {
  return {
    runId: row.run_id,
    round: row.round,
    clientId: row.client_id,
    sha256: row.sha256,
    numExamples: row.num_examples,
    metrics: decodeJsonObject(row.metrics),
    receivedAt: row.received_at,
  };
}

export class SqliteRounds implements RoundStore {
  private readonly insert: Database.Statement;
  private readonly byKey: Database.Statement;
  private readonly ofRun: Database.Statement;
  private readonly casState: Database.Statement;
  private readonly casClose: Database.Statement;
  private readonly casFail: Database.Statement;
  private readonly setMetrics: Database.Statement;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly runs: SqliteRuns,
  ) {
    const db = ctx.db;
    this.insert = db.prepare(
      `INSERT INTO rounds (run_id, round, state, sampled_client_ids, expected_clients, started_at, deadline_at, metrics,
                           adapter_sha_before)
       VALUES (?, ?, 'open', ?, ?, ?, ?, '{}', ?)`,
    );
    this.byKey = db.prepare('SELECT * FROM rounds WHERE run_id = ? AND round = ?');
    this.ofRun = db.prepare('SELECT * FROM rounds WHERE run_id = ? ORDER BY round');
    this.casState = db.prepare(
      `UPDATE rounds SET state = ?, closed_at = CASE WHEN ? = 'failed' THEN ? ELSE closed_at END
       WHERE run_id = ? AND round = ? AND state = ?`,
    );
    this.casClose = db.prepare(
      `UPDATE rounds SET state = 'closed', closed_at = ?, metrics = ?, adapter_sha_after = ?
       WHERE run_id = ? AND round = ? AND state = 'aggregating'`,
    );
    this.casFail = db.prepare(
      `UPDATE rounds SET state = 'failed', closed_at = ?, metrics = ?
       WHERE run_id = ? AND round = ? AND state IN ('open', 'aggregating')`,
    );
    this.setMetrics = db.prepare('UPDATE rounds SET metrics = ? WHERE run_id = ? AND round = ?');
  }

  open(round: NewRound): Promise<RoundRecord> {
    return this.ctx.write('open a round', () => {
      const runId = checkId(round.runId, 'run id');
      const n = checkInt(round.round, 'round', 1);
      if (!Array.isArray(round.sampledClientIds)) throw new InvalidArgumentError('sampledClientIds must be an array of client ids');
      const sampled = round.sampledClientIds.map((id, i) => checkId(id, `sampledClientIds[${i}]`));
      if (new Set(sampled).size !== sampled.length) throw new InvalidArgumentError('sampledClientIds must not repeat a client');
      const expected = checkNumber(round.expectedClients, 'expectedClients', 0);
      const deadlineAt = checkInt(round.deadlineAt, 'deadlineAt');
      const run = this.runs.require(runId);
      if (run.state !== 'running') {
        throw new InvalidTransitionError(`run ${runId} is ${run.state}: rounds open only while a run is running`);
      }
      if (n !== run.currentRound + 1) {
        throw new ConflictError(`run ${runId} is at round ${run.currentRound}; the next round is ${run.currentRound + 1}, not ${n}`, 'round');
      }
      const previous = this.byKey.get(runId, n - 1) as RoundRow | undefined;
      if (previous !== undefined && (previous.state === 'open' || previous.state === 'aggregating')) {
        throw new ConflictError(`round ${n - 1} of run ${runId} is still ${previous.state}; close or fail it first`, 'round');
      }
      this.insert.run(runId, n, JSON.stringify(sampled), expected, this.ctx.now(), deadlineAt, run.globalAdapterSha);
      this.runs.advanceRoundNow(runId, n);
      return this.requireNow(runId, n);
    });
  }

  get(runId: string, round: number): Promise<RoundRecord | undefined> {
    return this.ctx.read('read a round', () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      const row = this.byKey.get(runId, round) as RoundRow | undefined;
      return row && toRound(row);
    });
  }

  list(runId: string): Promise<RoundRecord[]> {
    return this.ctx.read('list rounds', () => {
      checkId(runId, 'run id');
      return (this.ofRun.all(runId) as RoundRow[]).map(toRound);
    });
  }

  transition(runId: string, round: number, from: RoundState, to: RoundState): Promise<boolean> {
    return this.ctx.write('change a round state', () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      checkEdge('round', ROUND_STATES, ROUND_EDGES, from, to);
      if (to === 'closed') throw new InvalidTransitionError('a round reaches closed only through close(), which records the new adapter');
      if (this.casState.run(to, to, this.ctx.now(), runId, round, from).changes === 1) return true;
      this.requireNow(runId, round);
      return false;
    });
  }

  close(runId: string, round: number, result: { adapterShaAfter: string | null; metrics: JsonObject }): Promise<boolean> {
    return this.ctx.write('close a round', () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      const sha = result.adapterShaAfter === null ? null : checkSha256Hex(result.adapterShaAfter, 'adapterShaAfter');
      encodeJsonObject(result.metrics, 'round metrics');
      const current = this.requireNow(runId, round);
      if (current.state !== 'aggregating') return false;
      if (sha !== null) this.runs.requireBlob(sha);
      const metrics = JSON.stringify({ ...current.metrics, ...result.metrics });
      this.casClose.run(this.ctx.now(), metrics, sha, runId, round);
      if (sha !== null) this.runs.setGlobalAdapterNow(runId, sha);
      return true;
    });
  }

  fail(runId: string, round: number, reason: string): Promise<boolean> {
    return this.ctx.write('fail a round', () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      checkText(reason, 'failure reason');
      const current = this.requireNow(runId, round);
      const metrics = JSON.stringify({ ...current.metrics, failure: reason });
      return this.casFail.run(this.ctx.now(), metrics, runId, round).changes === 1;
    });
  }

  mergeMetrics(runId: string, round: number, metrics: JsonObject): Promise<RoundRecord> {
    return this.ctx.write('merge round metrics', () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      encodeJsonObject(metrics, 'round metrics');
      const current = this.requireNow(runId, round);
      this.setMetrics.run(JSON.stringify({ ...current.metrics, ...metrics }), runId, round);
      return this.requireNow(runId, round);
    });
  }

  /** The round inside a caller's transaction, or NotFoundError. */
  requireNow(runId: string, round: number): RoundRecord {
    const row = this.byKey.get(runId, round) as RoundRow | undefined;
    if (row === undefined) throw new NotFoundError('round', `${round} of run ${runId}`);
    return toRound(row);
  }
}

export class SqliteUpdates implements UpdateStore {
  private readonly insert: Database.Statement;
  private readonly byKey: Database.Statement;
  private readonly ofRound: Database.Statement;
  private readonly bump: Database.Statement;
  private readonly roundState: Database.Statement;
  private readonly clientExists: Database.Statement;

  constructor(private readonly ctx: SqliteContext) {
    const db = ctx.db;
    this.insert = db.prepare(
      `INSERT INTO updates (run_id, round, client_id, sha256, num_examples, metrics, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.byKey = db.prepare('SELECT * FROM updates WHERE run_id = ? AND round = ? AND client_id = ?');
    this.ofRound = db.prepare('SELECT * FROM updates WHERE run_id = ? AND round = ? ORDER BY received_at, client_id');
    this.bump = db.prepare(
      `UPDATE rounds SET updates_received = updates_received + 1, examples_received = examples_received + ?
       WHERE run_id = ? AND round = ?`,
    );
    this.roundState = db.prepare('SELECT state FROM rounds WHERE run_id = ? AND round = ?');
    this.clientExists = db.prepare('SELECT 1 FROM clients WHERE id = ?');
  }

  put(update: NewUpdate): Promise<{ duplicate: boolean; record: UpdateRecord }> {
    return this.ctx.write('accept an update', () => {
      const runId = checkId(update.runId, 'run id');
      const round = checkInt(update.round, 'round', 1);
      const clientId = checkId(update.clientId, 'client id');
      const sha256 = checkSha256Hex(update.sha256, 'update sha256');
      const numExamples = checkInt(update.numExamples, 'numExamples');
      const metrics = encodeJsonObject(update.metrics, 'update metrics');
      const existing = this.byKey.get(runId, round, clientId) as UpdateRow | undefined;
      if (existing !== undefined) return { duplicate: true, record: toUpdate(existing) };
      const state = (this.roundState.get(runId, round) as { state: RoundState } | undefined)?.state;
      if (state === undefined) throw new NotFoundError('round', `${round} of run ${runId}`);
      if (state !== 'open') {
        throw new InvalidTransitionError(`round ${round} of run ${runId} is ${state}: it accepts updates only while open`);
      }
      if (this.clientExists.get(clientId) === undefined) throw new NotFoundError('client', clientId);
      const receivedAt = this.ctx.now();
      this.insert.run(runId, round, clientId, sha256, numExamples, metrics, receivedAt);
      this.bump.run(numExamples, runId, round);
      return {
        duplicate: false,
        record: { runId, round, clientId, sha256, numExamples, metrics: decodeJsonObject(metrics), receivedAt },
      };
    });
  }

  get(runId: string, round: number, clientId: string): Promise<UpdateRecord | undefined> {
    return this.ctx.read('read an update', () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      checkId(clientId, 'client id');
      const row = this.byKey.get(runId, round, clientId) as UpdateRow | undefined;
      return row && toUpdate(row);
    });
  }

  list(runId: string, round: number): Promise<UpdateRecord[]> {
    return this.ctx.read('list updates', () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      return (this.ofRound.all(runId, round) as UpdateRow[]).map(toUpdate);
    });
  }
}
