/**
 * Exactly one aggregator per run: the coordinator that holds the run's lease drives its rounds (opens, closes,
 * reserves privacy budget); every other coordinator still serves the run's clients (tasks, uploads) from the shared
 * store and waits to take over.
 *
 * The NATS lease is one KV key per run, `<run>` in `<prefix>_leases`, holding {holder, renewedAt, expiresAt}:
 * - acquire: kv.create when the key is absent (or deleted); exactly one coordinator's create succeeds;
 * - renew: kv.update conditioned on the revision the holder last wrote (compare-and-set), every renewEveryMs;
 * - take over: a follower that has watched the SAME revision for a whole ttlMs (its own monotonic clock, so no two
 *   machines' clocks are compared) overwrites it, again conditioned on that revision, so of several followers one
 *   wins. expiresAt is informational (for operators); takeover never trusts another machine's clock;
 * - hold: the holder believes it leads until (time it SENT its last successful write) + ttlMs − renewEveryMs, which
 *   ends before any follower can have watched that revision for ttlMs;
 * - fence: before each state-changing step the driver renews by compare-and-set; a lost CAS (someone took over)
 *   throws LeaseLostError and the step is abandoned. What remains is the time between the fence and the write it
 *   guards (milliseconds); the store's own compare-and-sets (open round n only after n−1, close only an aggregating
 *   round, one ledger entry per seq) make a stale leader's racing write lose or repeat an identical step;
 * - release: on drain, and when its run is no longer running, the holder deletes the key at its revision, so a
 *   follower takes over at once instead of after ttlMs.
 */
import type { KV, KvEntry } from 'nats';
import { LeaseLostError } from './errors.js';

/** What the run driver needs from leadership. The embedded coordinator (one process) always leads. */
export interface RunLeases {
  /** How long (ms) a coordinator that does not lead a run waits before looking again. */
  readonly pollMs: number;
  /** True when this coordinator leads the run now (acquiring the lease, or taking over a stale one, if it can). */
  lead(runId: string): Promise<boolean>;
  /** Resolves only if this coordinator still holds the run's lease (renewing it); else throws LeaseLostError. */
  fence(runId: string): Promise<void>;
  /** Gives the run's lease up (if held), so another coordinator may take it at once. */
  release(runId: string): Promise<void>;
  /** Gives every held lease up and stops renewing. Idempotent. */
  close(): Promise<void>;
}

/** One coordinator process: it leads every run. */
export class LocalRunLeases implements RunLeases {
  readonly pollMs = 1000;
  lead(): Promise<boolean> {
    return Promise.resolve(true);
  }
  fence(): Promise<void> {
    return Promise.resolve();
  }
  release(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export interface LeaseConfig {
  /** 4000: a lease its holder stopped renewing may be taken over after a follower watched it unchanged this long (ms). */
  readonly ttlMs: number;
  /** 1000: how often (ms) the holder renews; must be well under ttlMs (a renewal may take a request timeout). */
  readonly renewEveryMs: number;
  /** 500: how often (ms) a follower looks at a lease it does not hold. Fail-over takes ≤ ttlMs + 2·pollMs. */
  readonly pollMs: number;
}

export const DEFAULT_LEASE_CONFIG: LeaseConfig = Object.freeze({ ttlMs: 4000, renewEveryMs: 1000, pollMs: 500 });

interface LeaseDoc {
  readonly holder: string;
  /** Holder's wall clock at the write (ms since the epoch); informational. */
  readonly renewedAt: number;
  readonly expiresAt: number;
}

interface Held {
  readonly revision: number;
  /** Monotonic ms until which this process may act as leader without renewing. */
  readonly validUntil: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function keyOf(runId: string): string {
  return Buffer.from(runId, 'utf8').toString('base64url');
}

function isWrongLastSequence(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } } | null)?.api_error?.err_code === 10071;
}

function docOf(entry: KvEntry): LeaseDoc | undefined {
  if (entry.operation !== 'PUT') return undefined;
  return JSON.parse(decoder.decode(entry.value)) as LeaseDoc;
}

export class NatsRunLeases implements RunLeases {
  readonly pollMs: number;
  private readonly held = new Map<string, Held>();
  /** The revision a follower last saw for a run, and since when (monotonic ms). */
  private readonly observed = new Map<string, { readonly revision: number; readonly since: number }>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly kv: KV,
    /** This process: unique per start, so a restarted coordinator never mistakes its old lease for a live one. */
    readonly holder: string,
    private readonly config: LeaseConfig,
    private readonly log: (line: string) => void,
    private readonly monotonic: () => number = () => performance.now(),
    private readonly wallClock: () => number = Date.now,
  ) {
    this.pollMs = config.pollMs;
    this.timer = setInterval(() => void this.renewAll(), config.renewEveryMs);
    this.timer.unref();
  }

  /** Runs whose lease this process holds now. */
  heldRuns(): string[] {
    return [...this.held.keys()].filter((runId) => this.holds(runId));
  }

  lead(runId: string): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return this.serial(runId, async () => this.holds(runId) || (await this.acquire(runId)));
  }

  fence(runId: string): Promise<void> {
    return this.serial(runId, async () => {
      const held = this.held.get(runId);
      if (this.closed || held === undefined) throw new LeaseLostError(runId, this.holder, 'not held');
      if (!(await this.renew(runId, held))) throw new LeaseLostError(runId, this.holder, 'another coordinator took it over');
    });
  }

  release(runId: string): Promise<void> {
    return this.serial(runId, async () => {
      const held = this.held.get(runId);
      if (held === undefined) return;
      this.held.delete(runId);
      await this.kv.delete(keyOf(runId), { previousSeq: held.revision }).catch(() => undefined);
      this.log(`run ${runId}: lease released by ${this.holder}`);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await Promise.all([...this.held.keys()].map((runId) => this.release(runId)));
  }

  private holds(runId: string): boolean {
    const held = this.held.get(runId);
    return held !== undefined && this.monotonic() < held.validUntil;
  }

  /** One lease operation per run at a time in this process (the renew timer, the driver, the fence). */
  private serial<T>(runId: string, fn: () => Promise<T>): Promise<T> {
    const result = (this.chains.get(runId) ?? Promise.resolve()).then(fn, fn);
    const tail = result.catch(() => undefined);
    this.chains.set(runId, tail);
    void tail.then(() => {
      if (this.chains.get(runId) === tail) this.chains.delete(runId);
    });
    return result;
  }

  private async acquire(runId: string): Promise<boolean> {
    const key = keyOf(runId);
    const entry = await this.kv.get(key);
    const doc = entry === null ? undefined : docOf(entry);
    let previous: string | undefined;
    if (entry !== null && doc !== undefined && doc.holder !== this.holder) {
      // Someone else's lease: take it over only once it has not changed for a whole ttl, as seen from here.
      const seen = this.observed.get(runId);
      if (seen?.revision !== entry.revision) {
        this.observed.set(runId, { revision: entry.revision, since: this.monotonic() });
        return false;
      }
      if (this.monotonic() - seen.since < this.config.ttlMs) return false;
      previous = doc.holder;
    }
    // Absent, deleted, stale, or our own from before a lapse (nobody wrote after us): write at that revision.
    const written = await this.write(key, entry?.revision);
    if (written === undefined) return false;
    this.held.set(runId, written);
    this.observed.delete(runId);
    this.log(`run ${runId}: ${this.holder} leads it${previous === undefined ? '' : ` (took over from ${previous}, silent for ${this.config.ttlMs} ms)`}`);
    return true;
  }

  private async renew(runId: string, held: Held): Promise<boolean> {
    const written = await this.write(keyOf(runId), held.revision);
    if (written === undefined) {
      this.held.delete(runId);
      this.log(`run ${runId}: ${this.holder} lost its lease to another coordinator`);
      return false;
    }
    this.held.set(runId, written);
    return true;
  }

  /** Writes our lease doc at `revision` (undefined = create); the new hold, or undefined when the CAS lost. */
  private async write(key: string, revision: number | undefined): Promise<Held | undefined> {
    const sent = this.monotonic();
    const now = this.wallClock();
    const doc: LeaseDoc = { holder: this.holder, renewedAt: now, expiresAt: now + this.config.ttlMs };
    const bytes = encoder.encode(JSON.stringify(doc));
    try {
      const next = revision === undefined ? await this.kv.create(key, bytes) : await this.kv.update(key, bytes, revision);
      return { revision: next, validUntil: sent + this.config.ttlMs - this.config.renewEveryMs };
    } catch (err) {
      if (isWrongLastSequence(err)) return undefined;
      throw err;
    }
  }

  private async renewAll(): Promise<void> {
    for (const runId of [...this.held.keys()]) {
      await this.serial(runId, async () => {
        const held = this.held.get(runId);
        if (held === undefined || this.closed) return;
        try {
          await this.renew(runId, held);
        } catch (err) {
          if (this.monotonic() >= held.validUntil && this.held.get(runId) === held) {
            this.held.delete(runId);
            this.log(`run ${runId}: ${this.holder} let its lease lapse (cannot renew: ${(err as Error).message})`);
          }
        }
      });
    }
  }
}
