/**
 * The event bus: coordinators and tools announce what happened (events.ts) and anyone interested subscribes by
 * subject pattern. Two implementations with the same contract (test/bus/bus.test.ts): in-process (one coordinator,
 * tests) and core NATS subjects (several coordinators, dashboards). Delivery is at most once and in publish order
 * per publisher; a subscription sees events published after subscribe() returned (after flush() across
 * processes). Nothing is replayed: after a restart, read the store.
 *
 * Lifecycle (after nats.js): close() ends every subscription at once, drain() lets subscriptions deliver what they
 * have first; both are idempotent and make later calls throw BusClosedError. closed() resolves with the error that
 * ended the bus (undefined after close/drain). status() reports connection changes and dropped events.
 */
import type { LetheEvent } from './events.js';

export interface Subscription extends AsyncIterableIterator<LetheEvent> {
  /** The pattern subscribed to. */
  readonly pattern: string;
  /** Ends this subscription at once (events not yet read are discarded). Leaving a for-await loop does the same. */
  unsubscribe(): void;
}

export type BusStatus =
  | { readonly type: 'disconnect' }
  | { readonly type: 'reconnect' }
  /** A subscriber fell more than maxPending events behind; its oldest events were dropped. */
  | { readonly type: 'slow_consumer'; readonly pattern: string; readonly dropped: number }
  /** A message on a Lethe subject that is not a well-formed event (another publisher, another version). */
  | { readonly type: 'invalid_event'; readonly subject: string; readonly reason: string }
  | { readonly type: 'error'; readonly error: Error };

export interface EventBus extends AsyncDisposable {
  /** Announces an event on subjectOf(event). Throws InvalidEventError for a malformed event. */
  publish(event: LetheEvent): void;
  /** Events on subjects matching `pattern` (see SUBJECTS in events.ts), from now on. */
  subscribe(pattern: string): Subscription;
  /** Resolves once everything published so far has reached the server (in-process: at once). */
  flush(): Promise<void>;
  /** Stops publishing and subscribing, lets subscriptions hand out what they hold, then closes. */
  drain(): Promise<void>;
  /** Closes at once; subscriptions end and discard what they hold. */
  close(): Promise<void>;
  /** Resolves when the bus has closed: undefined after close/drain, else the error that ended it. */
  closed(): Promise<Error | undefined>;
  /** Connection changes and dropped events, as they happen. */
  status(): AsyncIterableIterator<BusStatus>;
  readonly isClosed: boolean;
}

export interface EventBusConfig {
  /** 10_000: events a subscription holds for a slow reader before dropping its oldest (reported via status()). */
  readonly maxPending: number;
}

export const DEFAULT_EVENT_BUS_CONFIG: EventBusConfig = Object.freeze({ maxPending: 10_000 });

/**
 * A bounded queue read as an async iterator: push never blocks (past `max` it drops the oldest item and reports
 * it), end() finishes after the queued items, return() (or end(discard)) finishes at once.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | undefined;
  private ended = false;

  constructor(
    private readonly max: number,
    private readonly onDrop: () => void,
    private readonly onReturn: () => void = () => undefined,
  ) {}

  push(item: T): void {
    if (this.ended) return;
    if (this.waiting !== undefined) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value: item, done: false });
      return;
    }
    if (this.items.length >= this.max) {
      this.items.shift();
      this.onDrop();
    }
    this.items.push(item);
  }

  end(discard = false): void {
    this.ended = true;
    if (discard) this.items.length = 0;
    if (this.waiting !== undefined && this.items.length === 0) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  return(): Promise<IteratorResult<T>> {
    this.end(true);
    this.onReturn();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

/** A subscription over an AsyncQueue; `onEnd` releases whatever feeds it. */
export function queueSubscription(pattern: string, maxPending: number, onDrop: () => void, onEnd: () => void): Subscription & { readonly queue: AsyncQueue<LetheEvent> } {
  const queue = new AsyncQueue<LetheEvent>(maxPending, onDrop, onEnd);
  return Object.assign(queue, {
    pattern,
    queue,
    unsubscribe: () => void queue.return(),
  });
}

/** Fans status reports out to every status() reader (each bounded like a subscription). */
export class StatusHub {
  private readonly readers = new Set<AsyncQueue<BusStatus>>();

  emit(status: BusStatus): void {
    for (const reader of this.readers) reader.push(status);
  }

  reader(max: number, ended: boolean): AsyncIterableIterator<BusStatus> {
    const reader: AsyncQueue<BusStatus> = new AsyncQueue<BusStatus>(max, () => undefined, () => this.readers.delete(reader));
    if (ended) reader.end();
    else this.readers.add(reader);
    return reader;
  }

  end(): void {
    for (const reader of this.readers) reader.end();
    this.readers.clear();
  }
}
