/**
 * Payload buffers set aside for the uploads a coordinator has just handed out tasks for, and faulted in (by the digest
 * worker) while the clients train. An upload's first writes to a fresh buffer otherwise pay a page fault per page,
 * on the event loop: measured 281–440 ms per 134 MB in the upload phase of the ingest bench, about a third of it.
 *
 * A buffer is handed out once (`take`) and never comes back: after the upload it belongs to the blob cache and the
 * round's close like any other, so nothing here can be reused while something still reads it. Unclaimed buffers go
 * when their task's deadline passes, and the oldest go first when a new reservation would pass `limitBytes`.
 */
import { sharedPageAlignedBuffer } from '../tensors/page-aligned.js';

interface Reservation {
  /** Page-aligned where possible, so the blob store writes the upload from it with direct I/O (tensors/page-aligned.ts). */
  readonly buffer: SharedArrayBuffer;
  /** The upload's size (the buffer may be rounded up). */
  readonly bytes: number;
  readonly deadlineMs: number;
  /** Set once every page has been touched; only then is the buffer handed out (nothing else writes it meanwhile). */
  ready: boolean;
}

export class PayloadReserve {
  private readonly held = new Map<string, Reservation>();
  private bytes = 0;
  private sweep: NodeJS.Timeout | undefined;

  /**
   * @param limitBytes most bytes held at once
   * @param prefault touches every page of a buffer off the event loop; resolves when done
   * @param clock the coordinator's clock (deadlines are on it)
   */
  constructor(
    readonly limitBytes: number,
    private readonly prefault: (buffer: SharedArrayBuffer) => Promise<void>,
    private readonly clock: () => number = Date.now,
  ) {}

  get heldBytes(): number {
    return this.bytes;
  }

  /**
   * Sets `bytes` aside for the upload of task `taskId` until `deadlineMs`, unless one is held or it cannot fit.
   * Resolves once the buffer is ready to hand out (at once when none was set aside; never rejects).
   */
  reserve(taskId: string, bytes: number, deadlineMs: number): Promise<void> {
    this.dropExpired();
    if (this.held.has(taskId) || bytes > this.limitBytes || deadlineMs <= this.clock()) return Promise.resolve();
    for (const [key, r] of this.held) {
      if (this.bytes + bytes <= this.limitBytes) break;
      this.drop(key, r);
    }
    const reservation: Reservation = { buffer: sharedPageAlignedBuffer(bytes), bytes, deadlineMs, ready: false };
    this.held.set(taskId, reservation);
    this.bytes += bytes;
    this.scheduleSweep();
    // A prefault that throws (no worker thread to be had) rejects like one that fails: never past this point.
    return Promise.resolve()
      .then(() => this.prefault(reservation.buffer))
      .then(
        () => void (reservation.ready = true),
        () => void (this.held.get(taskId) === reservation && this.drop(taskId, reservation)),
      );
  }

  /** The buffer set aside for `taskId`, when it is ready and was set aside for `bytes`; it is no longer held either way. */
  take(taskId: string, bytes: number): SharedArrayBuffer | undefined {
    const r = this.held.get(taskId);
    if (r === undefined) return undefined;
    this.drop(taskId, r);
    return r.ready && r.bytes === bytes && r.deadlineMs > this.clock() ? r.buffer : undefined;
  }

  private drop(key: string, r: Reservation): void {
    this.held.delete(key);
    this.bytes -= r.bytes;
    if (this.held.size === 0) {
      clearTimeout(this.sweep);
      this.sweep = undefined;
    }
  }

  private dropExpired(): void {
    const now = this.clock();
    for (const [key, r] of this.held) if (r.deadlineMs <= now) this.drop(key, r);
  }

  /** One timer for the earliest deadline, so an idle coordinator does not hold buffers nobody will claim. */
  private scheduleSweep(): void {
    clearTimeout(this.sweep);
    let earliest = Infinity;
    for (const r of this.held.values()) earliest = Math.min(earliest, r.deadlineMs);
    if (earliest === Infinity) return;
    this.sweep = setTimeout(() => {
      this.dropExpired();
      this.scheduleSweep();
    }, Math.max(0, earliest - this.clock()) + 1).unref();
  }
}
