/**
 * The event bus on core NATS subjects (no JetStream: events are announcements, the store keeps the state), so
 * every coordinator, dashboard or script connected to the cluster sees the same events.
 *
 *   const bus = await connectNatsBus({ servers: 'nats://127.0.0.1:4222' });
 *   for await (const event of bus.subscribe(SUBJECTS.run('run-1'))) console.log(event.type);
 */
import { connect, Events, type NatsConnection, type Subscription as NatsSubscription } from 'nats';
import { DEFAULT_EVENT_BUS_CONFIG, queueSubscription, StatusHub, type BusStatus, type EventBus, type EventBusConfig, type Subscription } from './bus.js';
import { BusClosedError, BusDrainingError, BusError, BusUnavailableError } from './errors.js';
import { checkPattern, decodeEvent, encodeEvent, subjectOf, type LetheEvent } from './events.js';

export interface NatsEventBusConfig extends EventBusConfig {
  /** 'nats://127.0.0.1:4222': the server, or a cluster's seed list. */
  readonly servers: string | readonly string[];
  /** 'lethe-bus': the connection name the server shows in its monitoring. */
  readonly name: string;
  /** 2000: how long (ms) connecting waits for a server before failing with BusUnavailableError. */
  readonly connectTimeoutMs: number;
  /** 250: pause (ms) between reconnect attempts; publishes are buffered meanwhile (nats.js, up to 8 MiB). */
  readonly reconnectWaitMs: number;
}

export const DEFAULT_NATS_EVENT_BUS_CONFIG: NatsEventBusConfig = Object.freeze({
  ...DEFAULT_EVENT_BUS_CONFIG,
  servers: 'nats://127.0.0.1:4222',
  name: 'lethe-bus',
  connectTimeoutMs: 2000,
  reconnectWaitMs: 250,
});

export class NatsEventBus implements EventBus {
  private state: 'open' | 'draining' | 'closed' = 'open';
  private readonly hub = new StatusHub();
  private readonly subscriptions = new Set<ReturnType<typeof queueSubscription>>();

  /** Use connectNatsBus; this takes over `nc` (closing the bus closes it). */
  constructor(
    private readonly nc: NatsConnection,
    private readonly config: EventBusConfig,
  ) {
    void this.followStatus();
    void nc.closed().then(() => {
      this.state = 'closed';
      this.hub.end();
    });
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  publish(event: LetheEvent): void {
    this.guard('publish an event');
    const bytes = encodeEvent(event); // validates the event before its ids become subject tokens
    const subject = subjectOf(event);
    this.call('publish an event', () => this.nc.publish(subject, bytes));
  }

  subscribe(pattern: string): Subscription {
    this.guard('subscribe');
    checkPattern(pattern);
    let dropped = 0;
    let source: NatsSubscription | undefined;
    const sub = queueSubscription(
      pattern,
      this.config.maxPending,
      () => this.hub.emit({ type: 'slow_consumer', pattern, dropped: ++dropped }),
      () => {
        this.subscriptions.delete(sub);
        if (source !== undefined && !source.isClosed()) source.unsubscribe();
      },
    );
    source = this.call('subscribe', () =>
      this.nc.subscribe(pattern, {
        callback: (err, msg) => {
          if (err !== null) {
            this.hub.emit({ type: 'error', error: err });
            return;
          }
          try {
            sub.queue.push(decodeEvent(msg.data));
          } catch (invalid) {
            this.hub.emit({ type: 'invalid_event', subject: msg.subject, reason: (invalid as Error).message });
          }
        },
      }),
    );
    this.subscriptions.add(sub);
    // Drained or closed with the connection: hand out what is queued, then end.
    void source.closed.finally(() => sub.queue.end());
    return sub;
  }

  async flush(): Promise<void> {
    this.guard('flush');
    await this.nc.flush();
  }

  /** Unsubscribes, delivers the messages already received, flushes what was published, then closes. */
  async drain(): Promise<void> {
    if (this.state === 'open' && !this.nc.isClosed()) {
      this.state = 'draining';
      await this.nc.drain();
    }
    await this.nc.closed();
  }

  async close(): Promise<void> {
    if (this.state !== 'closed') {
      this.state = 'closed';
      for (const sub of this.subscriptions) sub.queue.end(true);
      await this.nc.close();
    }
    await this.nc.closed();
  }

  async closed(): Promise<Error | undefined> {
    const err = await this.nc.closed();
    return err === undefined ? undefined : new BusUnavailableError('keep the event bus connected', err.message, { cause: err });
  }

  status(): AsyncIterableIterator<BusStatus> {
    return this.hub.reader(this.config.maxPending, this.state === 'closed');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.drain();
  }

  private async followStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === Events.Disconnect) this.hub.emit({ type: 'disconnect' });
      else if (s.type === Events.Reconnect) this.hub.emit({ type: 'reconnect' });
    }
  }

  private guard(what: string): void {
    if (this.state === 'closed' || this.nc.isClosed()) throw new BusClosedError(what);
    if (this.state === 'draining' || this.nc.isDraining()) throw new BusDrainingError(what);
  }

  /** Runs a nats.js call, wrapping what it throws (a closed or draining connection) in a BusError. */
  private call<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof BusError) throw err;
      const code = (err as { code?: unknown }).code;
      if (code === 'CONNECTION_DRAINING') throw new BusDrainingError(what);
      throw new BusClosedError(what, { cause: err });
    }
  }
}

/** Connects to NATS and returns the bus; BusUnavailableError when no server answers within connectTimeoutMs. */
export async function connectNatsBus(overrides: Partial<NatsEventBusConfig> = {}): Promise<NatsEventBus> {
  const config: NatsEventBusConfig = Object.freeze({ ...DEFAULT_NATS_EVENT_BUS_CONFIG, ...overrides });
  try {
    const nc = await connect({
      servers: typeof config.servers === 'string' ? config.servers : [...config.servers],
      name: config.name,
      timeout: config.connectTimeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: config.reconnectWaitMs,
    });
    return new NatsEventBus(nc, { maxPending: config.maxPending });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new BusUnavailableError(`connect the event bus to ${String(config.servers)}`, typeof code === 'string' ? code.toLowerCase().replace(/_/g, ' ') : String(err), {
      cause: err,
    });
  }
}
