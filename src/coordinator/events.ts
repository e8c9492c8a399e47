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
