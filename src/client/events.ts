/**
 * What a client node reports through `status()`: a union tagged by `type` (after nats.js `status()`), delivered to
 * every subscriber in order. A subscriber that stops reading never blocks the node: its queue is bounded and drops
 * the oldest events past the bound.
 */
import type { FailureReason, PushUpdateResult, TrainingMode } from '../wire/messages.js';

export type ClientEvent =
  /** The coordinator answered (first contact, or again after an outage). */
  | { readonly type: 'connected'; readonly address: string }
  /** A call failed for a reason that may pass (coordinator down or restarting); the node retries after `retryInMs`. */
  | { readonly type: 'disconnected'; readonly error: Error; readonly retryInMs: number; readonly failures: number }
  | { readonly type: 'task'; readonly taskId: string; readonly runId: string; readonly round: number; readonly mode: TrainingMode }
  | { readonly type: 'trained'; readonly taskId: string; readonly metrics: Readonly<Record<string, number>> }
  | { readonly type: 'uploaded'; readonly taskId: string; readonly result: PushUpdateResult; readonly bytes: number; readonly attempts: number }
  /** The task was given up: the round closed, the coordinator cancelled it, or it failed locally (`reason`). */
  | { readonly type: 'task_dropped'; readonly taskId: string; readonly reason: FailureReason | 'ROUND_CLOSED'; readonly message: string }
  /** A problem that did not stop the node. */
  | { readonly type: 'error'; readonly error: Error }
  | { readonly type: 'draining' }
  /** The node stopped; `error` when a refusal it cannot fix stopped it. */
  | { readonly type: 'closed'; readonly error?: Error };

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
