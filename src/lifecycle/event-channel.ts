/**
 * A fan-out of events to async-iterator subscribers: what the coordinator's and each client node's `status()` return
 * (after nats.js `status()`). Events reach every subscriber in order; a subscriber that stops reading never blocks the
 * emitter: its queue is bounded and loses the oldest events past the bound.
 */

const MAX_QUEUED = 1024;

interface Subscriber<T> {
  readonly queue: T[];
  wake: (() => void) | undefined;
  done: boolean;
}

/** A fan-out of events to async-iterator subscribers. */
export class EventChannel<T> {
  private readonly subscribers = new Set<Subscriber<T>>();
  private ended = false;

  emit(event: T): void {
    for (const s of this.subscribers) {
      if (s.queue.length >= MAX_QUEUED) s.queue.shift();
      s.queue.push(event);
      s.wake?.();
    }
  }

  /** Ends every subscription once the events already queued are read. */
  end(): void {
    this.ended = true;
    for (const s of this.subscribers) {
      s.done = true;
      s.wake?.();
    }
  }

  subscribe(): AsyncIterableIterator<T> {
    const sub: Subscriber<T> = { queue: [], wake: undefined, done: this.ended };
    this.subscribers.add(sub);
    const subscribers = this.subscribers;
    const iterator: AsyncIterableIterator<T> = {
      async next(): Promise<IteratorResult<T>> {
        for (;;) {
          const event = sub.queue.shift();
          if (event !== undefined) return { value: event, done: false };
          if (sub.done) {
            subscribers.delete(sub);
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (sub.wake = resolve));
          sub.wake = undefined;
        }
      },
      async return(): Promise<IteratorResult<T>> {
        sub.done = true;
        sub.queue.length = 0;
        subscribers.delete(sub);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }
}
