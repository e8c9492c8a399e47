/**
 * The state machines of runs, rounds and unlearning requests: which edges exist at all. Part of the store contract,
 * so every implementation refuses the same edges (InvalidTransitionError) and only races return false.
 */
import { InvalidTransitionError } from './errors.js';
import { checkOneOf } from './validate.js';
import type { RoundState, RunState, UnlearningState } from './store.js';

type Edges<S extends string> = { readonly [from in S]: readonly S[] };

export const RUN_STATES: readonly RunState[] = ['pending', 'running', 'completed', 'failed', 'budget_exhausted', 'stopped'];
export const RUN_EDGES: Edges<RunState> = {
  pending: ['running', 'failed', 'stopped'],
  running: ['completed', 'failed', 'budget_exhausted', 'stopped'],
  // An operator may raise the budget and resume.
  budget_exhausted: ['running', 'failed', 'stopped'],
  completed: [],
  failed: [],
  stopped: [],
};

export const ROUND_STATES: readonly RoundState[] = ['open', 'aggregating', 'closed', 'failed'];
export const ROUND_EDGES: Edges<RoundState> = {
  open: ['aggregating', 'failed'],
  aggregating: ['closed', 'failed'],
  closed: [],
  failed: [],
};

export const UNLEARNING_STATES: readonly UnlearningState[] = ['queued', 'assigned', 'training', 'verifying', 'active', 'failed'];
export const UNLEARNING_EDGES: Edges<UnlearningState> = {
  queued: ['assigned', 'failed'],
  // Back to queued when the assigned trainer disappears.
  assigned: ['training', 'queued', 'failed'],
  training: ['verifying', 'queued', 'failed'],
  // Back to training when verification shows the data is not forgotten yet.
  verifying: ['active', 'training', 'failed'],
  active: [],
  failed: [],
};

/** Validates both states and throws InvalidTransitionError unless `from → to` is an edge. */
export function checkEdge<S extends string>(
  entity: string,
  states: readonly S[],
  edges: Edges<S>,
  from: unknown,
  to: unknown,
): { from: S; to: S } {
  const f = checkOneOf(from, `${entity} from-state`, states);
  const t = checkOneOf(to, `${entity} to-state`, states);
  if (!edges[f].includes(t)) {
    const allowed = edges[f].length === 0 ? `${f} is final` : `from ${f} only ${edges[f].join(', ')}`;
    throw new InvalidTransitionError(`${entity} cannot go from ${f} to ${t}: ${allowed}`);
  }
  return { from: f, to: t };
}
