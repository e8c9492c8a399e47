/**
 * Publishing an object's chunks to JetStream with a bounded number awaiting their acknowledgement. nats.js copies
 * every published message into its outbound buffer at once: publishing a 56 MB adapter's chunks all together held
 * 56 MB of copies (and their garbage) while the server caught up, where a window of a few chunks keeps the socket as
 * busy. Chunks wait as views of the caller's bytes, which costs nothing.
 */
import type { JetStreamClient } from 'nats';

/** Chunks awaiting acknowledgement at most: 8 × ~1 MiB keeps a local server's pipe full. */
export const MAX_CHUNKS_IN_FLIGHT = 8;

export class ChunkPublisher {
  private readonly waiting: Uint8Array[] = [];
  private inFlight = 0;
  private failure: { readonly error: unknown } | undefined;
  /** Who waits for no chunk to be in flight (and none to be published, unless one failed). */
  private readonly waiters: (() => void)[] = [];
  /** Chunks handed to `publish` so far. */
  count = 0;
  /** The stream sequence each acknowledged chunk was stored at, by chunk index (complete once settled). */
  readonly seqs: number[] = [];

  constructor(
    private readonly js: JetStreamClient,
    private readonly subject: string,
    /** Refuses to start a publish (a closed store), or undefined to go ahead. */
    private readonly refusal: () => Error | undefined,
    private readonly window = MAX_CHUNKS_IN_FLIGHT,
  ) {}

  /** Queues the next chunk; it is published once fewer than `window` chunks await acknowledgement. */
  publish(bytes: Uint8Array): void {
    this.count++;
    this.waiting.push(bytes);
    this.pump();
  }

  /** Resolves once every chunk is acknowledged; rejects with the first failure (the rest are then not published). */
  async settled(): Promise<void> {
    if (this.inFlight > 0 || (this.waiting.length > 0 && !this.failure)) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.failure) throw this.failure.error;
  }

  /** Publishes nothing more and waits for the chunks already sent (so that a purge after it finds them all). */
  async cancel(): Promise<void> {
    this.waiting.length = 0;
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private pump(): void {
    while (this.inFlight < this.window && this.waiting.length > 0 && !this.failure) {
      const index = this.count - this.waiting.length;
      const bytes = this.waiting.shift()!;
      const refused = this.refusal();
      const ack = refused ? Promise.reject(refused) : this.js.publish(this.subject, bytes);
      this.inFlight++;
      ack.then(
        (stored) => {
          this.seqs[index] = stored.seq;
        },
        (error: unknown) => {
          this.failure ??= { error };
        },
      ).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.inFlight === 0 && (this.waiting.length === 0 || this.failure)) for (const wake of this.waiters.splice(0)) wake();
      });
    }
  }
}
