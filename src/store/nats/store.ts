/**
 * The NATS JetStream implementation of the Store, so several coordinator processes can share one durable state.
 * Documents live in KV buckets and adapter blobs in an object store, all named `<bucketPrefix>_<name>`:
 *
 *   <p>_clients      <id>                    client document (pending until its key index entry exists)
 *   <p>_client_keys  <public key hex>        { id }: the public-key uniqueness index
 *   <p>_tokens       <token hash hex>        join token (expiry, uses left)
 *   <p>_nonces       <client>.<nonce hex>    { ts }, created with kv.create = insert-if-absent; KV TTL as backstop
 *   <p>_runs         <run>                   run document + its current round + its unlearning ids (runs.ts)
 *   <p>_rounds       <run>.<n>               finished rounds, copied out of the run document (rounds.ts)
 *   <p>_updates      <run>.<n>.<client>      update records, counted once listed by their round
 *   <p>_ledger       <run>.<seq>             privacy ledger entries, created with kv.create (privacy.ts)
 *   <p>_budgets      <run>                   budget + its audit trail
 *   <p>_unlearning   <id>                    unlearning request documents (unlearning.ts)
 *   <p>_blobs        (object store) <sha256 hex>   adapter blobs
 *   <p>_strategy     (object store) <run>          strategy / server-optimizer state
 *
 * Ids in keys are base64url of their UTF-8. Every multi-key operation has one compare-and-set that decides it
 * (context.ts); two coordinators may race on anything and the loser sees false, a ConflictError or a retry.
 *
 *   const store = await openNatsStore({ servers: 'nats://127.0.0.1:4222', bucketPrefix: 'lethe' });
 *   const { duplicate } = await store.updates.put({ runId, round, clientId, sha256, numExamples, metrics });
 *   await store.drain();
 */
import { connect, Events, StorageType, type JetStreamClient, type NatsConnection } from 'nats';
import { InvalidArgumentError, StoreError } from '../errors.js';
import type { Store } from '../store.js';
import { checkInt } from '../validate.js';
import { NatsBlobs } from './blobs.js';
import { NatsContext } from './context.js';
import { toStoreError } from './errors.js';
import { NatsClients, NatsJoinTokens, NatsNonces } from './identity.js';
import { NatsBudgets, NatsLedger } from './privacy.js';
import { NatsRounds, NatsUpdates } from './rounds.js';
import { NatsRuns } from './runs.js';
import { NatsUnlearning } from './unlearning.js';

export interface NatsStoreConfig {
  /** 'nats://127.0.0.1:4222': the server, or a cluster's seed list (the client learns the other nodes). */
  readonly servers: string | readonly string[];
  /** 'lethe': prefix of every bucket name; letters, digits, '-' and '_' (one prefix = one independent store). */
  readonly bucketPrefix: string;
  /** 1: JetStream replicas per bucket; 3 on a 3-node cluster, so an acknowledged write is on a quorum of nodes. */
  readonly replicas: number;
  /** 'file': bucket storage. 'memory' loses everything when the server stops (throwaway tests only). */
  readonly storage: 'file' | 'memory';
  /**
   * 3_600_000: the nonce bucket's TTL (ms): the server drops nonces (and their delete markers) older than this even if
   * pruneBefore is never called. Must exceed twice the authenticator's timestamp window (2 × 5 min). 0 = no TTL.
   */
  readonly nonceTtlMs: number;
  /** 2000: how long (ms) opening waits for a server before failing with NatsUnavailableError. */
  readonly connectTimeoutMs: number;
  /** 5000: how long (ms) one JetStream request may take before the call fails with NatsUnavailableError. */
  readonly requestTimeoutMs: number;
  /** 250: pause (ms) between reconnect attempts; the store keeps reconnecting until it is closed. */
  readonly reconnectWaitMs: number;
  /** 64: compare-and-set attempts of one read-modify-write before StoreBusyError (only other processes make it lose). */
  readonly casAttempts: number;
  /**
   * 60_000: how old (ms, server time) a half-created client or unlearning request (one a crash cut off) must be
   * before a new one with the same id may take its place; long enough that it cannot still be in flight.
   */
  readonly pendingGraceMs: number;
  /** 'lethe-store': the connection name the server shows in its monitoring. */
  readonly name: string;
  /** Date.now: the clock for created/updated/recorded times (injected so tests can pin it). */
  readonly clock: () => number;
}

export const DEFAULT_NATS_STORE_CONFIG: NatsStoreConfig = Object.freeze({
  servers: 'nats://127.0.0.1:4222',
  bucketPrefix: 'lethe',
  replicas: 1,
  storage: 'file',
  nonceTtlMs: 3_600_000,
  connectTimeoutMs: 2000,
  requestTimeoutMs: 5000,
  reconnectWaitMs: 250,
  casAttempts: 64,
  pendingGraceMs: 60_000,
  name: 'lethe-store',
  clock: Date.now,
});

const KV_BUCKETS = ['clients', 'client_keys', 'tokens', 'nonces', 'runs', 'rounds', 'updates', 'ledger', 'budgets', 'unlearning'] as const;
const OBJECT_BUCKETS = ['blobs', 'strategy'] as const;

/** Every bucket name of a prefix (KV and object store), e.g. for an operator's backup or cleanup script. */
export function natsBucketNames(bucketPrefix: string): { readonly kv: readonly string[]; readonly objects: readonly string[] } {
  return { kv: KV_BUCKETS.map((b) => `${bucketPrefix}_${b}`), objects: OBJECT_BUCKETS.map((b) => `${bucketPrefix}_${b}`) };
}

export class NatsStore implements Store, AsyncDisposable {
  readonly clients: NatsClients;
  readonly joinTokens: NatsJoinTokens;
  readonly nonces: NatsNonces;
  readonly runs: NatsRuns;
  readonly rounds: NatsRounds;
  readonly updates: NatsUpdates;
  readonly blobs: NatsBlobs;
  readonly ledger: NatsLedger;
  readonly budgets: NatsBudgets;
  readonly unlearning: NatsUnlearning;
  private readonly ctx: NatsContext;

  /** Use openNatsStore: this takes a connection whose buckets exist. */
  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    buckets: Buckets,
    readonly config: NatsStoreConfig,
  ) {
    this.ctx = new NatsContext(nc, { casAttempts: config.casAttempts, clock: config.clock });
    void this.followStatus();
    this.blobs = new NatsBlobs(this.ctx, `${config.bucketPrefix}_blobs`, config.requestTimeoutMs);
    this.joinTokens = new NatsJoinTokens(this.ctx, buckets.tokens);
    this.clients = new NatsClients(this.ctx, buckets.clients, buckets.client_keys, this.joinTokens, config.pendingGraceMs);
    this.nonces = new NatsNonces(this.ctx, buckets.nonces, this.clients);
    this.runs = new NatsRuns(this.ctx, buckets.runs, buckets.strategy, this.blobs);
    this.rounds = new NatsRounds(this.ctx, buckets.rounds, this.runs, this.blobs);
    this.updates = new NatsUpdates(this.ctx, buckets.updates, this.rounds, this.clients, this.blobs);
    this.ledger = new NatsLedger(this.ctx, buckets.ledger, this.runs);
    this.budgets = new NatsBudgets(this.ctx, buckets.budgets, this.runs);
    this.unlearning = new NatsUnlearning(this.ctx, buckets.unlearning, this.runs, this.clients, this.blobs, config.pendingGraceMs);
  }

  get isClosed(): boolean {
    return this.ctx.isClosed;
  }

  /** Refuses new calls and closes the connection at once (calls in flight fail). Idempotent. */
  close(): void {
    if (this.ctx.isClosed) return;
    this.ctx.markClosed();
    void this.nc.close();
  }

  /** Refuses new calls, lets the calls in flight finish, then closes the connection. */
  async drain(): Promise<void> {
    if (this.ctx.isClosed) return void (await this.nc.closed());
    this.ctx.markClosed();
    await this.ctx.settled();
    if (!this.nc.isClosed()) await this.nc.drain();
  }

  /** Resolves when the connection has closed: undefined after close/drain, else the error that ended it. */
  async closed(): Promise<Error | undefined> {
    return (await this.nc.closed()) ?? undefined;
  }

  /** Deletes every bucket of this store's prefix (ALL its data), then closes. For tests and decommissioning. */
  async destroy(): Promise<void> {
    if (this.ctx.isClosed) throw new StoreError('store is closed: cannot destroy its buckets; open it again first', 'closed');
    const jsm = await this.js.jetstreamManager();
    const { kv, objects } = natsBucketNames(this.config.bucketPrefix);
    await Promise.all([...kv.map((b) => `KV_${b}`), ...objects.map((b) => `OBJ_${b}`)].map((s) => jsm.streams.delete(s).catch(() => false)));
    await this.drain();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.drain();
  }

  /** Keeps the fail-fast guard in step with the connection: calls made while it is down fail at once. */
  private async followStatus(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === Events.Disconnect) this.ctx.setReachable(false);
      else if (status.type === Events.Reconnect) this.ctx.setReachable(true);
    }
  }
}

type Buckets = {
  readonly [name in (typeof KV_BUCKETS)[number]]: Awaited<ReturnType<JetStreamClient['views']['kv']>>;
} & { readonly [name in (typeof OBJECT_BUCKETS)[number]]: Awaited<ReturnType<JetStreamClient['views']['os']>> };

/**
 * Connects, creates the buckets that do not exist yet and returns the store. Throws a StoreError: InvalidArgumentError
 * for a bad config, NatsUnavailableError when no server answers or JetStream is off, StoreIOError otherwise.
 */
export async function openNatsStore(overrides: Partial<NatsStoreConfig> = {}): Promise<NatsStore> {
  const config: NatsStoreConfig = Object.freeze({ ...DEFAULT_NATS_STORE_CONFIG, ...overrides });
  checkConfig(config);
  const what = `open the NATS store at ${String(config.servers)}`;
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({
      servers: typeof config.servers === 'string' ? config.servers : [...config.servers],
      name: config.name,
      timeout: config.connectTimeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: config.reconnectWaitMs,
      // No stack capture per request (a measurable share of a busy coordinator's CPU); errors name the operation.
      noAsyncTraces: true,
    });
    const js = nc.jetstream({ timeout: config.requestTimeoutMs });
    const storage = config.storage === 'memory' ? StorageType.Memory : StorageType.File;
    const p = config.bucketPrefix;
    const kvs = await Promise.all(
      KV_BUCKETS.map((b) =>
        js.views.kv(`${p}_${b}`, { history: 1, replicas: config.replicas, storage, ...(b === 'nonces' && config.nonceTtlMs > 0 ? { ttl: config.nonceTtlMs } : {}) }),
      ),
    );
    const objects = await Promise.all(OBJECT_BUCKETS.map((b) => js.views.os(`${p}_${b}`, { replicas: config.replicas, storage })));
    const buckets = Object.fromEntries([...KV_BUCKETS.map((b, i) => [b, kvs[i]]), ...OBJECT_BUCKETS.map((b, i) => [b, objects[i]])]) as Buckets;
    return new NatsStore(nc, js, buckets, config);
  } catch (err) {
    await nc?.close();
    throw toStoreError(err, what);
  }
}

function checkConfig(config: NatsStoreConfig): void {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(config.bucketPrefix)) {
    throw new InvalidArgumentError(`bucketPrefix must be 1-64 letters, digits, '-' or '_', got ${JSON.stringify(config.bucketPrefix)}`);
  }
  if (![1, 3, 5].includes(config.replicas)) throw new InvalidArgumentError(`replicas must be 1, 3 or 5, got ${config.replicas}`);
  checkInt(config.nonceTtlMs, 'nonceTtlMs');
  checkInt(config.connectTimeoutMs, 'connectTimeoutMs', 1);
  checkInt(config.requestTimeoutMs, 'requestTimeoutMs', 1);
  checkInt(config.reconnectWaitMs, 'reconnectWaitMs', 1);
  checkInt(config.casAttempts, 'casAttempts', 1);
  checkInt(config.pendingGraceMs, 'pendingGraceMs');
}
