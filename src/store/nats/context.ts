/**
 * What every NATS store module shares: the connection, the buckets, the clock, the closed / unavailable guard, the
 * one place where nats.js errors become StoreErrors, and the compare-and-set loop.
 *
 * Consistency model: a KV write can be conditioned on the key's last revision (kv.create = "only if absent",
 * kv.update = "only if still at revision r"), but JetStream has no multi-key transaction. So every domain operation
 * has exactly one linearisation point, a revision-checked write of ONE authoritative key, retried with a bound when
 * another writer got there first; writes to other keys happen before it and are invisible (or harmless) until it
 * lands. Per module comments say which key decides each operation.
 *
 * Reads asked for in the same turn of the event loop share one request (of a key, or of a snapshot), sent after all
 * of them were asked, so each still sees every write acknowledged before it was called; the decoded documents are
 * shared too (they are treated as immutable). A thousand clients waking at once then cost one read of their run.
 */
import type { KV, KvEntry, NatsConnection } from 'nats';
import { StoreBusyError, StoreClosedError } from '../errors.js';
import { isWrongLastSequence, NatsUnavailableError, toStoreError } from './errors.js';

/** A decoded document and the revision it was read at (0 when the key never existed). */
export interface Versioned<D> {
  readonly doc: D;
  readonly revision: number;
  /** When the server stored this revision (ms since the epoch). */
  readonly storedAt: number;
}

/** What a compare-and-set step decided: the result, and the document to write first (none: just return). */
export interface Decision<D, R> {
  readonly result: R;
  readonly write?: D;
}

export interface NatsContextConfig {
  /** How many revision-checked attempts a read-modify-write makes before giving up with StoreBusyError. */
  readonly casAttempts: number;
  readonly clock: () => number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A KV key token for an id: base64url of its UTF-8 (KV keys allow only [-/_=.a-zA-Z0-9], and '.' separates). */
export function keyToken(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

export function hexToken(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function encodeDoc(doc: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(doc));
}

function decodeDoc<D>(entry: KvEntry): D {
  return JSON.parse(decoder.decode(entry.value)) as D;
}

/** Decoded once per entry, however many callers share it. */
const decoded = new WeakMap<KvEntry, Versioned<unknown>>();

function toVersioned<D>(entry: KvEntry | null): Versioned<D> | undefined {
  if (entry === null || entry.operation !== 'PUT') return undefined;
  let value = decoded.get(entry);
  if (value === undefined) {
    value = { doc: decodeDoc<D>(entry), revision: entry.revision, storedAt: entry.created.getTime() };
    decoded.set(entry, value);
  }
  return value as Versioned<D>;
}

/** Requests asked for during one turn of the event loop, sent together at its end (setImmediate), one per name. */
export class TurnBatch<T> {
  private readonly waiting = new Map<string, Promise<T>>();

  run(name: string, send: () => Promise<T>): Promise<T> {
    let shared = this.waiting.get(name);
    if (shared === undefined) {
      shared = new Promise<T>((resolve, reject) =>
        setImmediate(() => {
          this.waiting.delete(name);
          send().then(resolve, reject);
        }),
      );
      this.waiting.set(name, shared);
    }
    return shared;
  }
}

/** Serialises this process's writes to one key, so only other processes' writes can make a CAS fail. */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

export class NatsContext {
  private closed = false;
  private reachable = true;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly queues = new WeakMap<KV, KeyedQueue>();
  private readonly reads = new WeakMap<KV, TurnBatch<KvEntry | null>>();
  private readonly snapshots = new WeakMap<KV, TurnBatch<Map<string, Versioned<unknown>>>>();

  constructor(
    readonly nc: NatsConnection,
    readonly config: NatsContextConfig,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  markClosed(): void {
    this.closed = true;
  }

  /** Fed from the connection's status stream: false between 'disconnect' and 'reconnect'. */
  setReachable(reachable: boolean): void {
    this.reachable = reachable;
  }

  now(): number {
    return Math.floor(this.config.clock());
  }

  /** Settles once every call started before now has settled (for drain). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Runs one store operation: refuses it when closed (StoreClosedError) or while the connection is down
   * (NatsUnavailableError, at once rather than after a request timeout), and maps whatever it throws.
   */
  op<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreClosedError(what));
    if (!this.reachable || this.nc.isClosed()) {
      return Promise.reject(new NatsUnavailableError(what, this.nc.isClosed() ? 'connection closed' : 'disconnected, reconnecting'));
    }
    const promise = (async () => {
      try {
        return await fn();
      } catch (err) {
        throw toStoreError(err, what);
      }
    })();
    this.inFlight.add(promise);
    void promise.catch(() => undefined).finally(() => this.inFlight.delete(promise));
    return promise;
  }

  async get<D>(kv: KV, key: string): Promise<Versioned<D> | undefined> {
    let batch = this.reads.get(kv);
    if (batch === undefined) this.reads.set(kv, (batch = new TurnBatch()));
    return toVersioned<D>(await batch.run(key, () => kv.get(key)));
  }

  /** Writes `doc` only if `key` holds no value; the new revision, or undefined when a value was there. */
  async create(kv: KV, key: string, doc: unknown): Promise<number | undefined> {
    try {
      return await kv.create(key, encodeDoc(doc));
    } catch (err) {
      if (isWrongLastSequence(err)) return undefined;
      throw err;
    }
  }

  /** Writes `doc` only if `key` is still at `revision`; the new revision, or undefined when another write came first. */
  async update(kv: KV, key: string, doc: unknown, revision: number): Promise<number | undefined> {
    try {
      return await kv.update(key, encodeDoc(doc), revision);
    } catch (err) {
      if (isWrongLastSequence(err)) return undefined;
      throw err;
    }
  }

  /** Deletes `key` only if it is still at `revision`; false when it changed (or was already gone). */
  async deleteAt(kv: KV, key: string, revision: number): Promise<boolean> {
    try {
      await kv.delete(key, { previousSeq: revision });
      return true;
    } catch (err) {
      if (isWrongLastSequence(err)) return false;
      throw err;
    }
  }

  /**
   * Read-modify-write of one key under compare-and-set: reads the document (undefined when absent), lets `decide`
   * choose a result and optionally a new document, and writes it only if the key is still at the revision read.
   * A lost race re-reads and decides again, up to `casAttempts` times with jittered backoff; then StoreBusyError.
   * `decide` may throw a StoreError (not found, invalid transition) to end the operation.
   */
  mutate<D, R>(
    kv: KV,
    key: string,
    what: string,
    decide: (current: Versioned<D> | undefined) => Decision<D, R> | Promise<Decision<D, R>>,
  ): Promise<R> {
    let queue = this.queues.get(kv);
    if (queue === undefined) this.queues.set(kv, (queue = new KeyedQueue()));
    return queue.run(key, async () => {
      for (let attempt = 0; attempt < this.config.casAttempts; attempt++) {
        const entry = await kv.get(key);
        const current = toVersioned<D>(entry);
        const { result, write } = await decide(current);
        if (write === undefined) return result;
        // A deleted key keeps its revision in a DEL marker; writing "after" it is still revision-checked.
        const written = entry === null ? await this.create(kv, key, write) : await this.update(kv, key, write, entry.revision);
        if (written !== undefined) return result;
        await backoff(attempt);
      }
      throw new StoreBusyError(`${what} (${this.config.casAttempts} compare-and-set attempts on ${key} lost to other writers)`);
    });
  }

  /** The current value of every key matching `filter` (a KV key pattern with * and >); the map is shared, read-only. */
  snapshot<D>(kv: KV, filter = '>'): Promise<ReadonlyMap<string, Versioned<D>>> {
    let batch = this.snapshots.get(kv);
    if (batch === undefined) this.snapshots.set(kv, (batch = new TurnBatch()));
    return batch.run(filter, () => this.watchAll(kv, filter)) as Promise<ReadonlyMap<string, Versioned<D>>>;
  }

  /** Every current value matching `filter`, via an ordered consumer. */
  private async watchAll(kv: KV, filter: string): Promise<Map<string, Versioned<unknown>>> {
    const found = new Map<string, Versioned<unknown>>();
    let initialized = false;
    let stop = (): void => undefined;
    const iterator = await kv.watch({
      key: filter,
      initializedFn: () => {
        initialized = true;
        stop();
      },
    });
    stop = () => iterator.stop();
    if (initialized) iterator.stop();
    for await (const entry of iterator) {
      const value = toVersioned<unknown>(entry);
      if (value === undefined) found.delete(entry.key);
      else found.set(entry.key, value);
    }
    return found;
  }
}

function backoff(attempt: number): Promise<void> {
  const capMs = Math.min(50, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, Math.random() * capMs));
}
