/**
 * What the coordinator reports through `status()`: a union tagged by `type` (after nats.js `status()`), delivered to
 * every subscriber in order. Subscribers that stop reading do not block the coordinator: each has a bounded queue and
 * loses its oldest events past it.
 */

export type CoordinatorEvent =
  | { readonly type: 'listening'; readonly address: string; readonly port: number }
  | { readonly type: 'run_created'; readonly runId: string }
  | { readonly type: 'round_opened'; readonly runId: string; readonly round: number; readonly sampled: number }
  | { readonly type: 'update_accepted'; readonly runId: string; readonly round: number; readonly clientId: string; readonly bytes: number }
  | { readonly type: 'round_closed'; readonly runId: string; readonly round: number; readonly accepted: number; readonly metrics: Readonly<Record<string, number>> }
  | { readonly type: 'round_failed'; readonly runId: string; readonly round: number; readonly reason: string }
  | { readonly type: 'run_finished'; readonly runId: string; readonly state: 'completed' | 'failed' | 'budget_exhausted'; readonly message: string }
  | { readonly type: 'rejected'; readonly method: string; readonly code: string; readonly message: string }
  | { readonly type: 'error'; readonly error: Error }
  /** The shared state (NATS) cannot be reached: calls fail UNAVAILABLE until `state_available`. */
  | { readonly type: 'state_unavailable'; readonly reason: string }
  | { readonly type: 'state_available' }
  | { readonly type: 'draining' }
  | { readonly type: 'closed' };

const MAX_QUEUED = 1024;

interface Subscriber {
  readonly queue: CoordinatorEvent[];
  wake: (() => void) | undefined;
  done: boolean;
}

export class EventHub {
  private readonly subscribers = new Set<Subscriber>();
  private ended = false;

  emit(event: CoordinatorEvent): void {
    for (const s of this.subscribers) {
      if (s.queue.length >= MAX_QUEUED) s.queue.shift();
      s.queue.push(event);
      s.wake?.();
    }
  }

  /** Ends every subscription after the events already queued. */
  end(): void {
    this.ended = true;
    for (const s of this.subscribers) {
      s.done = true;
      s.wake?.();
    }
  }

  subscribe(): AsyncIterableIterator<CoordinatorEvent> {
    const sub: Subscriber = { queue: [], wake: undefined, done: this.ended };
    this.subscribers.add(sub);
    const hub = this;
    const iterator: AsyncIterableIterator<CoordinatorEvent> = {
      async next(): Promise<IteratorResult<CoordinatorEvent>> {
        for (;;) {
          const event = sub.queue.shift();
          if (event !== undefined) return { value: event, done: false };
          if (sub.done) {
            hub.subscribers.delete(sub);
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (sub.wake = resolve));
          sub.wake = undefined;
        }
      },
      async return(): Promise<IteratorResult<CoordinatorEvent>> {
        sub.done = true;
        sub.queue.length = 0;
        hub.subscribers.delete(sub);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }
}
