/**
 * Federated rounds and the client updates they accept, in JetStream KV.
 *
 * Where a round lives: the current round is inside its run's document (runs.ts), so open / transition / close /
 * fail and the counter bump of an accepted update are single compare-and-sets there. When round n+1 opens, round n
 * (final by then) is first copied to the rounds bucket under `<run>.<n>`, stamped with the run-document revision it
 * was copied from; a copy only replaces one from an older revision, so a late copier cannot overwrite newer metrics.
 * The run document wins over a copy of its current round (an open that lost its race may have left one).
 *
 * How an update is accepted (updates bucket, key `<run>.<round>.<client>`): the record is created with kv.create
 * (first writer wins), then the run document's CAS adds the client to the round's `accepted` list and bumps the
 * counters; a record counts only once listed there. A put that finds an unlisted record (another put in flight, or
 * one cut off by a crash) finishes counting it; a record the round can no longer count is deleted.
 */
import type { KV } from 'nats';
import { ConflictError, InvalidArgumentError, InvalidTransitionError, NotFoundError, StoreBusyError } from '../errors.js';
import type { JsonObject, NewRound, NewUpdate, RoundRecord, RoundState, RoundStore, UpdateRecord, UpdateStore } from '../store.js';
import { checkEdge, ROUND_EDGES, ROUND_STATES } from '../transitions.js';
import { checkId, checkInt, checkNumber, checkSha256Hex, checkText, decodeJsonObject, encodeJsonObject } from '../validate.js';
import type { NatsBlobs } from './blobs.js';
import { keyToken, type NatsContext, type Versioned } from './context.js';
import type { NatsClients } from './identity.js';
import type { NatsRuns, RoundDoc, RunDoc } from './runs.js';

interface ArchivedRound extends RoundDoc {
  /** The run-document revision this copy was taken from. */
  readonly sourceRevision: number;
}

function toRound(doc: RoundDoc): RoundRecord {
  return {
    runId: doc.runId,
    round: doc.round,
    state: doc.state,
    sampledClientIds: doc.sampledClientIds,
    expectedClients: doc.expectedClients,
    startedAt: doc.startedAt,
    deadlineAt: doc.deadlineAt,
    closedAt: doc.closedAt,
    metrics: doc.metrics,
    adapterShaBefore: doc.adapterShaBefore,
    adapterShaAfter: doc.adapterShaAfter,
    updatesReceived: doc.updatesReceived,
    examplesReceived: doc.examplesReceived,
  };
}

/** What counting an update in its round came to. */
type Counting = 'counted' | 'already_counted' | { readonly refused: RoundState };

/** The result of a CAS step on the run document that only applies while round n is its current round. */
const ARCHIVED = Symbol('archived');

function roundKey(runId: string, round: number): string {
  return `${keyToken(runId)}.${round}`;
}

function notFound(runId: string, round: number): NotFoundError {
  return new NotFoundError('round', `${round} of run ${runId}`);
}

function mergedMetrics(doc: RoundDoc, metrics: JsonObject): JsonObject {
  return { ...doc.metrics, ...metrics };
}

/** A count waiting for the next write of its run document. */
interface CountRequest {
  readonly round: number;
  readonly clientId: string;
  readonly numExamples: number;
  readonly resolve: (outcome: Counting) => void;
  readonly reject: (err: unknown) => void;
}

export class NatsRounds implements RoundStore {
  /** Counts waiting per run, and the runs whose counts are being written (count()). */
  private readonly countQueue = new Map<string, CountRequest[]>();
  private readonly countWriters = new Set<string>();

  constructor(
    private readonly ctx: NatsContext,
    private readonly archive: KV,
    private readonly runs: NatsRuns,
    private readonly blobs: NatsBlobs,
  ) {}

  open(round: NewRound): Promise<RoundRecord> {
    return this.ctx.op('open a round', async () => {
      const runId = checkId(round.runId, 'run id');
      const n = checkInt(round.round, 'round', 1);
      if (!Array.isArray(round.sampledClientIds)) throw new InvalidArgumentError('sampledClientIds must be an array of client ids');
      const sampled = round.sampledClientIds.map((id, i) => checkId(id, `sampledClientIds[${i}]`));
      if (new Set(sampled).size !== sampled.length) throw new InvalidArgumentError('sampledClientIds must not repeat a client');
      const expected = checkNumber(round.expectedClients, 'expectedClients', 0);
      const deadlineAt = checkInt(round.deadlineAt, 'deadlineAt');
      const opened = await this.runs.mutate(runId, 'open a round', async (run, revision) => {
        if (run.state !== 'running') {
          throw new InvalidTransitionError(`run ${runId} is ${run.state}: rounds open only while a run is running`);
        }
        if (n !== run.currentRound + 1) {
          throw new ConflictError(`run ${runId} is at round ${run.currentRound}; the next round is ${run.currentRound + 1}, not ${n}`, 'round');
        }
        const previous = run.round;
        if (previous !== null && (previous.state === 'open' || previous.state === 'aggregating')) {
          throw new ConflictError(`round ${n - 1} of run ${runId} is still ${previous.state}; close or fail it first`, 'round');
        }
        if (previous !== null) await this.copyToArchive(previous, revision);
        const doc: RoundDoc = {
          runId,
          round: n,
          state: 'open',
          sampledClientIds: sampled,
          expectedClients: expected,
          startedAt: this.ctx.now(),
          deadlineAt,
          closedAt: null,
          metrics: {},
          adapterShaBefore: run.globalAdapterSha,
          adapterShaAfter: null,
          updatesReceived: 0,
          examplesReceived: 0,
          accepted: [],
        };
        return { result: doc, write: { ...run, currentRound: n, round: doc, updatedAt: this.ctx.now() } };
      });
      return toRound(opened);
    });
  }

  get(runId: string, round: number): Promise<RoundRecord | undefined> {
    return this.ctx.op('read a round', async () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      const doc = await this.find(runId, round);
      return doc && toRound(doc);
    });
  }

  list(runId: string): Promise<RoundRecord[]> {
    return this.ctx.op('list rounds', async () => {
      checkId(runId, 'run id');
      const run = await this.runs.read(runId);
      if (run === undefined) return [];
      const copies = await this.ctx.snapshot<ArchivedRound>(this.archive, `${keyToken(runId)}.*`);
      const current = run.doc.round;
      const rounds: RoundDoc[] = [...copies.values()].map((c) => c.doc).filter((doc) => doc.round !== current?.round);
      if (current !== null) rounds.push(current);
      return rounds.sort((a, b) => a.round - b.round).map(toRound);
    });
  }

  transition(runId: string, round: number, from: RoundState, to: RoundState): Promise<boolean> {
    return this.ctx.op('change a round state', async () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      checkEdge('round', ROUND_STATES, ROUND_EDGES, from, to);
      if (to === 'closed') throw new InvalidTransitionError('a round reaches closed only through close(), which records the new adapter');
      return this.changeCurrent(runId, round, 'change a round state', (doc, run) => {
        if (doc.state !== from) return { result: false };
        const changed: RoundDoc = { ...doc, state: to, closedAt: to === 'failed' ? this.ctx.now() : doc.closedAt };
        return { result: true, write: { ...run, round: changed } };
      });
    });
  }

  close(runId: string, round: number, result: { adapterShaAfter: string | null; metrics: JsonObject }): Promise<boolean> {
    return this.ctx.op('close a round', async () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      const sha = result.adapterShaAfter === null ? null : checkSha256Hex(result.adapterShaAfter, 'adapterShaAfter');
      const metrics = decodeJsonObject(encodeJsonObject(result.metrics, 'round metrics'));
      let blobChecked = sha === null;
      return this.changeCurrent(runId, round, 'close a round', async (doc, run) => {
        if (doc.state !== 'aggregating') return { result: false };
        if (!blobChecked && sha !== null) {
          await this.blobs.require(sha);
          blobChecked = true;
        }
        const now = this.ctx.now();
        const closed: RoundDoc = { ...doc, state: 'closed', closedAt: now, metrics: mergedMetrics(doc, metrics), adapterShaAfter: sha };
        // The round's state and the run's global adapter change in the same write.
        const adapter = sha === null ? {} : { globalAdapterSha: sha, updatedAt: now };
        return { result: true, write: { ...run, ...adapter, round: closed } };
      });
    });
  }

  fail(runId: string, round: number, reason: string): Promise<boolean> {
    return this.ctx.op('fail a round', async () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      checkText(reason, 'failure reason');
      return this.changeCurrent(runId, round, 'fail a round', (doc, run) => {
        if (doc.state !== 'open' && doc.state !== 'aggregating') return { result: false };
        const failed: RoundDoc = { ...doc, state: 'failed', closedAt: this.ctx.now(), metrics: { ...doc.metrics, failure: reason } };
        return { result: true, write: { ...run, round: failed } };
      });
    });
  }

  mergeMetrics(runId: string, round: number, metrics: JsonObject): Promise<RoundRecord> {
    return this.ctx.op('merge round metrics', async () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      const extra = decodeJsonObject(encodeJsonObject(metrics, 'round metrics'));
      const merged = await this.runs.mutate<RoundDoc | typeof ARCHIVED>(runId, 'merge round metrics', (run) => {
        if (run.round?.round !== round) return { result: ARCHIVED };
        const doc: RoundDoc = { ...run.round, metrics: mergedMetrics(run.round, extra) };
        return { result: doc, write: { ...run, round: doc } };
      }).catch(this.roundNotFound(runId, round));
      if (merged !== ARCHIVED) return toRound(merged);
      return toRound(
        await this.ctx.mutate<ArchivedRound, ArchivedRound>(this.archive, roundKey(runId, round), 'merge round metrics', (copy) => {
          if (copy === undefined) throw notFound(runId, round);
          const doc: ArchivedRound = { ...copy.doc, metrics: mergedMetrics(copy.doc, extra) };
          return { result: doc, write: doc };
        }),
      );
    });
  }

  /**
   * Counts client `clientId`'s update (of `numExamples`) in round n: the client is added to the round's accepted list
   * in the run document. Idempotent; refused when the round is not open.
   *
   * Group commit: every update of a round is a compare-and-set of the same run document, so counts that arrive while
   * one is being written wait and go into the next write together (one CAS for the batch, not one each), which is
   * what lets a round take a thousand uploads in seconds. Each count still resolves only once its write landed.
   */
  count(runId: string, round: number, clientId: string, numExamples: number): Promise<Counting> {
    return new Promise<Counting>((resolve, reject) => {
      const waiting = this.countQueue.get(runId) ?? [];
      waiting.push({ round, clientId, numExamples, resolve, reject });
      this.countQueue.set(runId, waiting);
      if (!this.countWriters.has(runId)) {
        this.countWriters.add(runId);
        void this.writeCounts(runId);
      }
    });
  }

  /** Writes the run's waiting counts, batch after batch, until none are left. */
  private async writeCounts(runId: string): Promise<void> {
    for (let batch = this.countQueue.get(runId); batch !== undefined && batch.length > 0; batch = this.countQueue.get(runId)) {
      this.countQueue.set(runId, []);
      try {
        const outcomes = await this.countBatch(runId, batch);
        batch.forEach((request, i) => outcomes[i]!.then(request.resolve, request.reject));
      } catch (err) {
        for (const request of batch) request.reject(err);
      }
    }
    this.countQueue.delete(runId);
    this.countWriters.delete(runId);
  }

  /** One compare-and-set for the batch; then, per request, its outcome (a round no longer current is looked up). */
  private async countBatch(runId: string, batch: readonly CountRequest[]): Promise<Promise<Counting>[]> {
    const decided = await this.runs
      .mutate<(Counting | typeof ARCHIVED)[]>(runId, 'accept updates', (run) => {
        const doc = run.round;
        const counted = doc === null ? new Set<string>() : new Set(doc.accepted);
        const added: string[] = [];
        let examples = 0;
        const outcomes = batch.map((request): Counting | typeof ARCHIVED => {
          if (doc?.round !== request.round) return ARCHIVED;
          if (counted.has(request.clientId)) return 'already_counted';
          if (doc.state !== 'open') return { refused: doc.state };
          counted.add(request.clientId);
          added.push(request.clientId);
          examples += request.numExamples;
          return 'counted';
        });
        if (doc === null || added.length === 0) return { result: outcomes };
        const round: RoundDoc = {
          ...doc,
          accepted: [...doc.accepted, ...added],
          updatesReceived: doc.updatesReceived + added.length,
          examplesReceived: doc.examplesReceived + examples,
        };
        return { result: outcomes, write: { ...run, round } };
      })
      .catch(this.roundNotFound(runId, batch[0]!.round));
    return decided.map(async (outcome, i) => {
      if (outcome !== ARCHIVED) return outcome;
      const { round, clientId } = batch[i]!;
      const copy = await this.ctx.get<ArchivedRound>(this.archive, roundKey(runId, round));
      if (copy === undefined) throw notFound(runId, round);
      return copy.doc.accepted.includes(clientId) ? 'already_counted' : { refused: copy.doc.state };
    });
  }

  /** Round n of the run as stored (current in the run document, or archived), or undefined; validated arguments. */
  async find(runId: string, round: number): Promise<RoundDoc | undefined> {
    const run = await this.runs.read(runId);
    if (run === undefined || round > run.doc.currentRound) return undefined;
    if (run.doc.round?.round === round) return run.doc.round;
    return (await this.ctx.get<ArchivedRound>(this.archive, roundKey(runId, round)))?.doc;
  }

  /**
   * A CAS step on round n while it is the run's current round. Rounds before it are final, so a step on one of them
   * changes nothing (false); NotFoundError for a round (or run) that does not exist.
   */
  private async changeCurrent(
    runId: string,
    round: number,
    what: string,
    decide: (doc: RoundDoc, run: RunDoc) => { result: boolean; write?: RunDoc } | Promise<{ result: boolean; write?: RunDoc }>,
  ): Promise<boolean> {
    const outcome = await this.runs
      .mutate<boolean | typeof ARCHIVED>(runId, what, (run) => (run.round?.round === round ? decide(run.round, run) : { result: ARCHIVED }))
      .catch(this.roundNotFound(runId, round));
    if (outcome !== ARCHIVED) return outcome;
    if ((await this.find(runId, round)) === undefined) throw notFound(runId, round);
    return false;
  }

  /** Copies a finished round out of the run document, unless a copy from a newer revision is there. */
  private copyToArchive(doc: RoundDoc, sourceRevision: number): Promise<void> {
    return this.ctx.mutate<ArchivedRound, void>(this.archive, roundKey(doc.runId, doc.round), 'archive a round', (copy) =>
      copy !== undefined && copy.doc.sourceRevision >= sourceRevision ? { result: undefined } : { result: undefined, write: { ...doc, sourceRevision } },
    );
  }

  /** An unknown run surfaces as an unknown round, as in the SQLite store. */
  private roundNotFound(runId: string, round: number): (err: unknown) => never {
    return (err) => {
      if (err instanceof NotFoundError && err.entity === 'run') throw notFound(runId, round);
      throw err;
    };
  }
}

export class NatsUpdates implements UpdateStore {
  constructor(
    private readonly ctx: NatsContext,
    private readonly kv: KV,
    private readonly rounds: NatsRounds,
    private readonly clients: NatsClients,
    private readonly blobs: NatsBlobs,
  ) {}

  put(update: NewUpdate): Promise<{ duplicate: boolean; record: UpdateRecord }> {
    return this.ctx.op('accept an update', async () => {
      const runId = checkId(update.runId, 'run id');
      const round = checkInt(update.round, 'round', 1);
      const clientId = checkId(update.clientId, 'client id');
      const sha256 = checkSha256Hex(update.sha256, 'update sha256');
      const numExamples = checkInt(update.numExamples, 'numExamples');
      const metrics = decodeJsonObject(encodeJsonObject(update.metrics, 'update metrics'));
      const key = updateKey(runId, round, clientId);
      const record: UpdateRecord = { runId, round, clientId, sha256, numExamples, metrics, receivedAt: this.ctx.now() };
      for (let attempt = 0; attempt < this.ctx.config.casAttempts; attempt++) {
        // Create first (a new update, the usual case, then costs no read of its key); read only when one is there.
        const doc = await this.rounds.find(runId, round);
        if (doc === undefined) throw notFound(runId, round);
        let stored: Versioned<UpdateRecord> | undefined;
        let created = false;
        if (doc.state === 'open') {
          await this.clients.require(clientId);
          const revision = await this.ctx.create(this.kv, key, record);
          if (revision !== undefined) {
            stored = { doc: record, revision, storedAt: Date.now() };
            created = true;
          }
        }
        // Another put of the same client created it first (or the round closed): count theirs, if there is one.
        stored ??= await this.ctx.get<UpdateRecord>(this.kv, key);
        if (stored === undefined) {
          if (doc.state !== 'open') throw refusal(runId, round, doc.state);
          continue; // it was there and has been removed since (refused): decide again
        }
        const counting = await this.rounds.count(runId, round, clientId, stored.doc.numExamples);
        if (counting === 'counted' || counting === 'already_counted') return { duplicate: !created, record: stored.doc };
        // Never counted and now never will be: remove it so it cannot pass for an accepted update.
        await this.ctx.deleteAt(this.kv, key, stored.revision);
        throw refusal(runId, round, counting.refused);
      }
      throw new StoreBusyError(`accept an update (its record for ${clientId} kept appearing and vanishing under other writers)`);
    });
  }

  /**
   * The records of the round's accepted updates: one read each for a few, else one snapshot of the round's keys
   * (a thousand uploads then cost one ordered consumer, not a thousand requests). Records never counted are left out.
   */
  private async accepted(doc: RoundDoc): Promise<UpdateRecord[]> {
    const { runId, round, accepted } = doc;
    if (accepted.length <= SNAPSHOT_ABOVE) {
      const stored = await Promise.all(accepted.map((c) => this.ctx.get<UpdateRecord>(this.kv, updateKey(runId, round, c))));
      return stored.filter((s) => s !== undefined).map((s) => s.doc);
    }
    const counted = new Set(accepted);
    const all = await this.ctx.snapshot<UpdateRecord>(this.kv, `${keyToken(runId)}.${round}.*`);
    return [...all.values()].map((s) => s.doc).filter((u) => counted.has(u.clientId));
  }

  get(runId: string, round: number, clientId: string): Promise<UpdateRecord | undefined> {
    return this.ctx.op('read an update', async () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      checkId(clientId, 'client id');
      // The round first (one read a round's clients share): a client it has not counted costs no read of its key.
      const doc = await this.rounds.find(runId, round);
      if (doc === undefined || !acceptedSet(doc).has(clientId)) return undefined;
      return (await this.ctx.get<UpdateRecord>(this.kv, updateKey(runId, round, clientId)))?.doc;
    });
  }

  list(runId: string, round: number): Promise<UpdateRecord[]> {
    return this.ctx.op('list updates', async () => {
      checkId(runId, 'run id');
      checkInt(round, 'round', 1);
      const doc = await this.rounds.find(runId, round);
      if (doc === undefined) return [];
      const records = await this.accepted(doc);
      const sorted = records.sort((a, b) => a.receivedAt - b.receivedAt || (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
      // Listing a round's updates is how the aggregator starts reading them: let their payloads come in meanwhile.
      this.blobs.readAhead(sorted.map((u) => u.sha256));
      return sorted;
    });
  }
}

/** A round document's accepted clients as a set, built once per (shared, immutable) decoded document. */
const acceptedSets = new WeakMap<RoundDoc, ReadonlySet<string>>();

function acceptedSet(doc: RoundDoc): ReadonlySet<string> {
  let set = acceptedSets.get(doc);
  if (set === undefined) acceptedSets.set(doc, (set = new Set(doc.accepted)));
  return set;
}

/** Above this many accepted updates, listing a round reads its keys with one snapshot instead of one get each. */
const SNAPSHOT_ABOVE = 8;

function updateKey(runId: string, round: number, clientId: string): string {
  return `${keyToken(runId)}.${round}.${keyToken(clientId)}`;
}

function refusal(runId: string, round: number, state: RoundState): InvalidTransitionError {
  return new InvalidTransitionError(`round ${round} of run ${runId} is ${state}: it accepts updates only while open`);
}
