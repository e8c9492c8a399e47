/**
 * The in-process event bus: one coordinator (or a test) talking to itself. Same contract as the NATS bus, including
 * a JSON round trip per delivery, so a subscriber gets a copy shaped exactly as it would arrive over NATS.
 */
import { DEFAULT_EVENT_BUS_CONFIG, queueSubscription, StatusHub, type BusStatus, type EventBus, type EventBusConfig, type Subscription } from './bus.js';
import { BusClosedError } from './errors.js';
import { checkPattern, decodeEvent, encodeEvent, subjectMatches, subjectOf, type LetheEvent } from './events.js';

type Entry = Subscription & { readonly queue: { push(e: LetheEvent): void; end(discard?: boolean): void } };

export class InProcessEventBus implements EventBus {
  private state: 'open' | 'closed' = 'open';
  private readonly subscriptions = new Set<Entry>();
  private readonly hub = new StatusHub();
  private readonly config: EventBusConfig;
  private readonly ended: Promise<Error | undefined>;
  private resolveEnded: (value: Error | undefined) => void = () => undefined;

  constructor(overrides: Partial<EventBusConfig> = {}) {
    this.config = Object.freeze({ ...DEFAULT_EVENT_BUS_CONFIG, ...overrides });
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  publish(event: LetheEvent): void {
    this.guard('publish an event');
    const bytes = encodeEvent(event); // validates the event before its ids become subject tokens
    const subject = subjectOf(event);
    for (const sub of this.subscriptions) {
      if (subjectMatches(sub.pattern, subject)) sub.queue.push(decodeEvent(bytes));
    }
  }

  subscribe(pattern: string): Subscription {
    this.guard('subscribe');
    checkPattern(pattern);
    let dropped = 0;
    const sub: Entry = queueSubscription(
      pattern,
      this.config.maxPending,
      () => this.hub.emit({ type: 'slow_consumer', pattern, dropped: ++dropped }),
      () => this.subscriptions.delete(sub),
    );
    this.subscriptions.add(sub);
    return sub;
  }

  flush(): Promise<void> {
    try {
      this.guard('flush');
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve();
  }

  /** Nothing is in flight in-process: subscriptions keep what they hold and end after it. */
  drain(): Promise<void> {
    return this.finish(false);
  }

  close(): Promise<void> {
    return this.finish(true);
  }

  closed(): Promise<Error | undefined> {
    return this.ended;
  }

  status(): AsyncIterableIterator<BusStatus> {
    return this.hub.reader(this.config.maxPending, this.state === 'closed');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.drain();
  }

  private finish(discard: boolean): Promise<void> {
    if (this.state !== 'closed') {
      this.state = 'closed';
      for (const sub of this.subscriptions) sub.queue.end(discard);
      this.subscriptions.clear();
      this.hub.end();
      this.resolveEnded(undefined);
    }
    return Promise.resolve();
  }

  private guard(what: string): void {
    if (this.state === 'closed') throw new BusClosedError(what);
  }
}
