/**
 * Liveness shared between coordinators: a client heartbeating to coordinator A must count as live for B, which may
 * lead the run and sample it. Choice: a KV bucket `<prefix>_presence`, one key per client holding the time (ms, the
 * writer's clock) it was last seen, with the bucket's max age as the short life of an entry; every coordinator
 * watches the bucket and keeps a mirror in memory, so "is this client live" stays a synchronous map lookup and a
 * coordinator that just took over a run knows at once who is live (bus events would give it no history).
 *
 * Writes are throttled by the caller (src/coordinator/presence.ts shares a client at most every shareEveryMs), so
 * 1,000 clients heartbeating every 5 s cost ~400 small KV writes a second. They are plain publishes on the key's
 * subject, which the bucket's stream stores like kv.put does, without waiting for its acknowledgement: a sighting is
 * fire-and-forget anyway, and a thousand acknowledged requests per round were a tenth of a busy coordinator's NATS
 * work. One that is lost (NATS down) only delays liveness until the client's next call. Comparing one machine's
 * timestamp with another's clock assumes clocks agree to well within the online window (15 s by default): run NTP.
 */
import type { KV, NatsConnection, QueuedIterator, KvEntry } from 'nats';

/** Where a coordinator's Presence publishes what it sees (the embedded coordinator has none). */
export interface PresenceSink {
  /** Announces that `clientId` made a verified call at `atMs`. Fire-and-forget: failures only delay liveness. */
  share(clientId: string, atMs: number): void;
  /** Announces that `clientId` must no longer count as live anywhere (it was revoked). */
  forget(clientId: string): void;
}

/** What the watch hands the local Presence. */
export interface PresenceObserver {
  observe(clientId: string, atMs: number): void;
  drop(clientId: string): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function keyOf(clientId: string): string {
  return Buffer.from(clientId, 'utf8').toString('base64url');
}

function idOf(key: string): string {
  return Buffer.from(key, 'base64url').toString('utf8');
}

export class NatsPresence implements PresenceSink {
  private watcher: QueuedIterator<KvEntry> | undefined;
  private closed = false;
  private failing = false;

  constructor(
    private readonly kv: KV,
    /** The connection and bucket name `kv` uses, for unacknowledged writes to its subjects. */
    private readonly nc: NatsConnection,
    private readonly bucket: string,
    private readonly log: (line: string) => void,
    /** 1000: pause (ms) before re-opening a watch that ended (e.g. NATS restarted). */
    private readonly rewatchMs = 1000,
  ) {}

  share(clientId: string, atMs: number): void {
    if (this.closed || this.nc.isClosed()) return;
    try {
      this.nc.publish(`$KV.${this.bucket}.${keyOf(clientId)}`, encoder.encode(String(atMs)));
      this.failing = false;
    } catch (err) {
      this.warn(`cannot share that client ${clientId} is live: ${(err as Error).message}`);
    }
  }

  forget(clientId: string): void {
    if (this.closed) return;
    this.kv.delete(keyOf(clientId)).catch((err: unknown) => this.warn(`cannot share that client ${clientId} is gone: ${(err as Error).message}`));
  }

  /** Mirrors every coordinator's sightings into `observer` until close(); resolves once the current ones are in. */
  async follow(observer: PresenceObserver): Promise<void> {
    let ready!: () => void;
    const initialized = new Promise<void>((resolve) => (ready = resolve));
    void (async () => {
      while (!this.closed) {
        try {
          const watcher = await this.kv.watch({ initializedFn: () => ready() });
          this.watcher = watcher;
          for await (const entry of watcher) {
            const id = idOf(entry.key);
            if (entry.operation === 'PUT') observer.observe(id, Number(decoder.decode(entry.value)));
            else observer.drop(id);
          }
        } catch (err) {
          this.warn(`presence watch ended: ${(err as Error).message}`);
        }
        ready(); // a watch that fails at once must not hold up start
        if (!this.closed) await new Promise((r) => setTimeout(r, this.rewatchMs).unref());
      }
    })();
    await initialized;
  }

  close(): void {
    this.closed = true;
    this.watcher?.stop();
  }

  /** One line per failure streak, not one per heartbeat. */
  private warn(line: string): void {
    if (this.failing || this.closed) return;
    this.failing = true;
    this.log(line);
  }
}
