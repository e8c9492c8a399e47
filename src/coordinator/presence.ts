/**
 * Which clients are live, and the long polls waiting for work. Liveness is kept in memory on purpose: it is a
 * property of connections, not of durable state, so after a restart every client is offline until its next signed
 * call (a heartbeat arrives within one interval), and no round samples a client that is gone.
 */
export class Presence {
  private readonly lastSeen = new Map<string, number>();
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(
    private readonly clock: () => number,
    /** A client silent for longer than this is offline. */
    private readonly onlineWindowMs: number,
  ) {}

  /** Records a verified call from the client. */
  seen(clientId: string): void {
    this.lastSeen.set(clientId, this.clock());
  }

  /** Forgets a client (revoked). */
  forget(clientId: string): void {
    this.lastSeen.delete(clientId);
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
