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
