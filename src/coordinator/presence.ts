/**
 * Which clients are live, and the long polls waiting for work. Liveness is not durable state: it is a property of
 * connections, so after a restart every client is offline until its next signed call (a heartbeat arrives within
 * one interval), and no round samples a client that is gone. Several coordinators share it through a sink
 * (src/cluster/presence.ts: a NATS KV bucket every coordinator mirrors), so a client heartbeating to one counts as
 * live for the one that leads its run; the embedded coordinator has no sink.
 */
import type { PresenceObserver, PresenceSink } from '../cluster/presence.js';

export class Presence implements PresenceObserver {
  private readonly lastSeen = new Map<string, number>();
  private readonly lastShared = new Map<string, number>();
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(
    private readonly clock: () => number,
    /** A client silent for longer than this is offline. */
    private readonly onlineWindowMs: number,
    /** Where sightings are shared with other coordinators (none: this process only). */
    private readonly sink?: PresenceSink,
    /** Share a client at most this often (ms); a third of the online window keeps it live everywhere. */
    private readonly shareEveryMs = onlineWindowMs / 3,
  ) {}

  /** Records a verified call from the client. */
  seen(clientId: string): void {
    const now = this.clock();
    this.lastSeen.set(clientId, now);
    if (this.sink !== undefined && !(now - (this.lastShared.get(clientId) ?? -Infinity) < this.shareEveryMs)) {
      this.lastShared.set(clientId, now);
      this.sink.share(clientId, now);
    }
  }

  /** A sighting by another coordinator (or this one, echoed back by the sink). */
  observe(clientId: string, atMs: number): void {
    if (Number.isFinite(atMs) && atMs > (this.lastSeen.get(clientId) ?? -Infinity)) this.lastSeen.set(clientId, atMs);
  }

  /** Another coordinator forgot the client. */
  drop(clientId: string): void {
    this.lastSeen.delete(clientId);
    this.lastShared.delete(clientId);
  }

  /** Forgets a client (revoked), here and, through the sink, everywhere. */
  forget(clientId: string): void {
    this.drop(clientId);
    this.sink?.forget(clientId);
    this.notify([clientId]);
  }

  lastSeenMs(clientId: string): number {
    return this.lastSeen.get(clientId) ?? 0;
  }

  isOnline(clientId: string): boolean {
    const t = this.lastSeen.get(clientId);
    return t !== undefined && this.clock() - t <= this.onlineWindowMs;
  }

  onlineIds(): string[] {
    return [...this.lastSeen.keys()].filter((id) => this.isOnline(id));
  }

  /** Resolves after `ms`, or earlier when notify() names the client (or notifyAll runs). */
  wait(clientId: string, ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.waiters.get(clientId);
      if (!set) this.waiters.set(clientId, (set = new Set()));
      const done = (): void => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(clientId) === set) this.waiters.delete(clientId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
    });
  }

  notify(clientIds: Iterable<string>): void {
    for (const id of clientIds) for (const done of [...(this.waiters.get(id) ?? [])]) done();
  }

  notifyAll(): void {
    for (const id of [...this.waiters.keys()]) this.notify([id]);
  }
}
