/**
 * Runs in JetStream KV. The run document is the aggregate root of everything that must change together: the run's
 * state and global adapter, its CURRENT round (state, counters, the ids of accepted updates) and the ordered ids of
 * its unlearning requests. So opening a round, accepting an update, closing a round (which moves the global adapter)
 * and numbering an unlearning request are each one compare-and-set of this document. Finished rounds are copied to
 * the rounds bucket when the next one opens (rounds.ts). Strategy state can exceed a KV value (server-optimizer
 * moments), so it lives in an object store, one object per run.
 */
import type { KV, ObjectStore } from 'nats';
import { ConflictError, NotFoundError } from '../errors.js';
import type { JsonObject, RoundRecord, RunRecord, RunState, RunStore } from '../store.js';
import { checkEdge, RUN_EDGES, RUN_STATES } from '../transitions.js';
import { checkId, checkOneOf, checkSha256Hex, checkText, decodeJsonObject, encodeJsonObject } from '../validate.js';
import type { NatsBlobs } from './blobs.js';
import { keyToken, TurnBatch, type Decision, type NatsContext, type Versioned } from './context.js';

/** A round as stored: the RoundRecord fields plus the ids of the clients whose update it counted. */
export interface RoundDoc extends RoundRecord {
  /** Who was counted: an update record is accepted iff its client is listed here (updates.ts). */
  readonly accepted: readonly string[];
}

export interface RunDoc {
  readonly id: string;
  readonly config: JsonObject;
  readonly state: RunState;
  readonly currentRound: number;
  readonly globalAdapterSha: string | null;
  readonly message: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Round `currentRound` (null before the first). */
  readonly round: RoundDoc | null;
  /** Unlearning request ids in the order they were numbered: request i has index i + 1. */
  readonly unlearningIds: readonly string[];
}

function toRun(doc: RunDoc): RunRecord {
  return {
    id: doc.id,
    config: doc.config,
    state: doc.state,
    currentRound: doc.currentRound,
    globalAdapterSha: doc.globalAdapterSha,
    message: doc.message,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
  };
}

export class NatsRuns implements RunStore {
  /** Strategy-state reads of one run asked in the same turn (every task of a round needs it) share one read. */
  private readonly strategyReads = new TurnBatch<Uint8Array | null>();

  constructor(
    private readonly ctx: NatsContext,
    private readonly kv: KV,
    private readonly strategy: ObjectStore,
    private readonly blobs: NatsBlobs,
  ) {}

  create(run: { id: string; config: JsonObject; globalAdapterSha?: string }): Promise<RunRecord> {
    return this.ctx.op('create a run', async () => {
      const id = checkId(run.id, 'run id');
      const config = decodeJsonObject(encodeJsonObject(run.config, 'run config'));
      const sha = run.globalAdapterSha === undefined ? null : checkSha256Hex(run.globalAdapterSha, 'globalAdapterSha');
      if ((await this.read(id)) !== undefined) throw new ConflictError(`run ${id} already exists`, 'run_id');
      if (sha !== null) await this.blobs.require(sha);
      const now = this.ctx.now();
      const doc: RunDoc = {
        id,
        config,
        state: 'pending',
        currentRound: 0,
        globalAdapterSha: sha,
        message: null,
        createdAt: now,
        updatedAt: now,
        round: null,
        unlearningIds: [],
      };
      if ((await this.ctx.create(this.kv, keyToken(id), doc)) === undefined) throw new ConflictError(`run ${id} already exists`, 'run_id');
      return toRun(doc);
    });
  }

  get(id: string): Promise<RunRecord | undefined> {
    return this.ctx.op('read a run', async () => {
      const found = await this.read(checkId(id, 'run id'));
      return found && toRun(found.doc);
    });
  }

  list(options: { states?: readonly RunState[] } = {}): Promise<RunRecord[]> {
    return this.ctx.op('list runs', async () => {
      const states = options.states?.map((s) => checkOneOf(s, 'run state', RUN_STATES));
      const all = [...(await this.ctx.snapshot<RunDoc>(this.kv)).values()].map((v) => v.doc);
      return all
        .filter((doc) => states === undefined || states.includes(doc.state))
        .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map(toRun);
    });
  }

  transition(id: string, from: RunState, to: RunState, detail: { message?: string } = {}): Promise<boolean> {
    return this.ctx.op('change a run state', async () => {
      checkId(id, 'run id');
      checkEdge('run', RUN_STATES, RUN_EDGES, from, to);
      const message = detail.message === undefined ? null : checkText(detail.message, 'run message');
      return this.mutate(id, 'change a run state', (run) =>
        run.state !== from ? { result: false } : { result: true, write: { ...run, state: to, message, updatedAt: this.ctx.now() } },
      );
    });
  }

  setGlobalAdapter(id: string, sha256: string): Promise<void> {
    return this.ctx.op('set the global adapter', async () => {
      checkId(id, 'run id');
      checkSha256Hex(sha256, 'global adapter sha256');
      await this.require(id);
      await this.blobs.require(sha256);
      await this.mutate(id, 'set the global adapter', (run) => ({
        result: undefined,
        write: { ...run, globalAdapterSha: sha256, updatedAt: this.ctx.now() },
      }));
    });
  }

  putStrategyState(id: string, state: JsonObject): Promise<void> {
    return this.ctx.op('save strategy state', async () => {
      checkId(id, 'run id');
      const bytes = new TextEncoder().encode(encodeJsonObject(state, 'strategy state'));
      await this.require(id);
      // The object store writes the new chunks, then swaps the object's metadata in one message.
      await this.strategy.putBlob({ name: id }, bytes);
    });
  }

  getStrategyState(id: string): Promise<JsonObject | undefined> {
    return this.ctx.op('read strategy state', async () => {
      checkId(id, 'run id');
      const bytes = await this.strategyReads.run(id, () => this.strategy.getBlob(id));
      return bytes === null ? undefined : decodeJsonObject(new TextDecoder().decode(bytes));
    });
  }

  /** The run document, validated id. */
  read(id: string): Promise<Versioned<RunDoc> | undefined> {
    return this.ctx.get<RunDoc>(this.kv, keyToken(id));
  }

  /** The run document or NotFoundError. */
  async require(id: string): Promise<RunDoc> {
    const found = await this.read(id);
    if (found === undefined) throw new NotFoundError('run', id);
    return found.doc;
  }

  /**
   * Compare-and-set on the run document (the linearisation point of every run-level operation); NotFoundError when
   * the run does not exist. `decide` sees the document and the revision it was read at.
   */
  mutate<R>(
    id: string,
    what: string,
    decide: (run: RunDoc, revision: number) => Decision<RunDoc, R> | Promise<Decision<RunDoc, R>>,
  ): Promise<R> {
    return this.ctx.mutate<RunDoc, R>(this.kv, keyToken(id), what, (current) => {
      if (current === undefined) throw new NotFoundError('run', id);
      return decide(current.doc, current.revision);
    });
  }
}
