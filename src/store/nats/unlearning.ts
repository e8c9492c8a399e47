/**
 * Unlearning requests in JetStream KV, one document per request id.
 *
 * Numbering: a request's index t is its position in its run document's `unlearningIds` list, appended by a
 * compare-and-set there (the linearisation point), so two coordinators can never hand out the same t. Creating a
 * request first creates its document with index 0 ("not numbered yet": kv.create also makes the id unique), then
 * numbers it, then writes the index into the document. Readers treat a document with index 0 as numbered iff its
 * run lists it, so a half-created request is never seen; one left behind by a crash is taken over by a new request
 * with the same id after `pendingGraceMs`.
 */
import type { KV } from 'nats';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { JsonObject, NewUnlearningRequest, UnlearningRequestRecord, UnlearningState, UnlearningStore } from '../store.js';
import { checkEdge, UNLEARNING_EDGES, UNLEARNING_STATES } from '../transitions.js';
import { checkId, checkOneOf, checkSha256Hex, checkText, decodeJsonObject, encodeJsonObject } from '../validate.js';
import type { NatsBlobs } from './blobs.js';
import { keyToken, type NatsContext, type Versioned } from './context.js';
import type { NatsClients } from './identity.js';
import type { NatsRuns, RunDoc } from './runs.js';

type RequestDoc = UnlearningRequestRecord;

export class NatsUnlearning implements UnlearningStore {
  constructor(
    private readonly ctx: NatsContext,
    private readonly kv: KV,
    private readonly runs: NatsRuns,
    private readonly clients: NatsClients,
    private readonly blobs: NatsBlobs,
    private readonly pendingGraceMs: number,
  ) {}

  create(request: NewUnlearningRequest): Promise<UnlearningRequestRecord> {
    return this.ctx.op('create an unlearning request', async () => {
      const id = checkId(request.id, 'unlearning request id');
      const runId = checkId(request.runId, 'run id');
      if (!Array.isArray(request.clientIds)) throw new InvalidArgumentError('clientIds must be an array of client ids');
      const clientIds = request.clientIds.map((c, i) => checkId(c, `clientIds[${i}]`));
      const selector = decodeJsonObject(encodeJsonObject(request.selector, 'selector'));
      const reason = checkText(request.reason, 'reason');
      await this.runs.require(runId);
      for (const clientId of clientIds) await this.clients.require(clientId);
      const now = this.ctx.now();
      const doc: RequestDoc = {
        id,
        runId,
        index: 0,
        clientIds,
        selector,
        reason,
        state: 'queued',
        failureReason: null,
        metrics: {},
        createdAt: now,
        updatedAt: now,
        completedAt: null,
        resultAdapterSha: null,
      };
      const key = keyToken(id);
      const revision = (await this.ctx.create(this.kv, key, doc)) ?? (await this.takeOverAbandoned(key, doc));
      const index = await this.runs.mutate(runId, 'number an unlearning request', (run) => {
        const position = run.unlearningIds.indexOf(id);
        if (position >= 0) return { result: position + 1 };
        return { result: run.unlearningIds.length + 1, write: { ...run, unlearningIds: [...run.unlearningIds, id] } };
      });
      const numbered: RequestDoc = { ...doc, index };
      // A reader may already have written the index (it resolves pending documents); either way it is this one.
      await this.ctx.update(this.kv, key, numbered, revision);
      return numbered;
    });
  }

  get(id: string): Promise<UnlearningRequestRecord | undefined> {
    return this.ctx.op('read an unlearning request', async () => {
      checkId(id, 'unlearning request id');
      return this.resolve(await this.ctx.get<RequestDoc>(this.kv, keyToken(id)));
    });
  }

  list(options: { runId?: string; states?: readonly UnlearningState[]; clientId?: string } = {}): Promise<UnlearningRequestRecord[]> {
    return this.ctx.op('list unlearning requests', async () => {
      const runId = options.runId === undefined ? undefined : checkId(options.runId, 'run id');
      const states = options.states?.map((s) => checkOneOf(s, 'unlearning state', UNLEARNING_STATES));
      const clientId = options.clientId === undefined ? undefined : checkId(options.clientId, 'client id');
      const all = await this.ctx.snapshot<RequestDoc>(this.kv);
      const runDocs = new Map<string, Promise<RunDoc | undefined>>();
      const resolved = await Promise.all([...all.values()].map((found) => this.resolve(found, runDocs)));
      return resolved
        .filter((r): r is RequestDoc => r !== undefined)
        .filter(
          (r) =>
            (runId === undefined || r.runId === runId) &&
            (states === undefined || states.includes(r.state)) &&
            (clientId === undefined || r.clientIds.includes(clientId)),
        )
        .sort((a, b) => a.createdAt - b.createdAt || (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0) || a.index - b.index);
    });
  }

  transition(
    id: string,
    from: UnlearningState,
    to: UnlearningState,
    detail: { failureReason?: string; resultAdapterSha?: string; metrics?: JsonObject } = {},
  ): Promise<boolean> {
    return this.ctx.op('change an unlearning request state', async () => {
      checkId(id, 'unlearning request id');
      checkEdge('unlearning request', UNLEARNING_STATES, UNLEARNING_EDGES, from, to);
      const failure = detail.failureReason === undefined ? null : checkText(detail.failureReason, 'failureReason');
      const sha = detail.resultAdapterSha === undefined ? null : checkSha256Hex(detail.resultAdapterSha, 'resultAdapterSha');
      const metrics = detail.metrics === undefined ? {} : decodeJsonObject(encodeJsonObject(detail.metrics, 'unlearning metrics'));
      if (to === 'failed' && failure === null) throw new InvalidArgumentError('a failed unlearning request needs a failureReason');
      if (to === 'active' && sha === null) throw new InvalidArgumentError('an active unlearning request needs its resultAdapterSha');
      if (sha !== null) await this.blobs.require(sha);
      return this.ctx.mutate<RequestDoc, boolean>(this.kv, keyToken(id), 'change an unlearning request state', async (current) => {
        const doc = await this.resolve(current);
        if (doc === undefined) throw new NotFoundError('unlearning request', id);
        if (doc.state !== from) return { result: false };
        const now = this.ctx.now();
        const next: RequestDoc = {
          ...doc,
          state: to,
          updatedAt: now,
          failureReason: failure ?? doc.failureReason,
          resultAdapterSha: sha ?? doc.resultAdapterSha,
          metrics: { ...doc.metrics, ...metrics },
          completedAt: to === 'active' ? now : null,
        };
        return { result: true, write: next };
      });
    });
  }

  /** The request a stored document stands for: numbered, or index 0 with its run listing it; else undefined. */
  private async resolve(
    found: Versioned<RequestDoc> | undefined,
    runDocs = new Map<string, Promise<RunDoc | undefined>>(),
  ): Promise<RequestDoc | undefined> {
    if (found === undefined) return undefined;
    const doc = found.doc;
    if (doc.index > 0) return doc;
    let run = runDocs.get(doc.runId);
    if (run === undefined) {
      run = this.runs.read(doc.runId).then((v) => v?.doc);
      runDocs.set(doc.runId, run);
    }
    const position = (await run)?.unlearningIds.indexOf(doc.id) ?? -1;
    return position < 0 ? undefined : { ...doc, index: position + 1 };
  }

  /** The revision of our document written over an abandoned un-numbered one, or ConflictError('unlearning_id'). */
  private async takeOverAbandoned(key: string, doc: RequestDoc): Promise<number> {
    const existing = await this.ctx.get<RequestDoc>(this.kv, key);
    const abandoned =
      existing !== undefined && (await this.resolve(existing)) === undefined && Date.now() - existing.storedAt >= this.pendingGraceMs;
    const revision = abandoned ? await this.ctx.update(this.kv, key, doc, existing.revision) : undefined;
    if (revision === undefined) throw new ConflictError(`unlearning request ${doc.id} already exists`, 'unlearning_id');
    return revision;
  }
}
