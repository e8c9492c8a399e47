/**
 * Errors of the coordinator: each has a stable `code`. src/wire/status.ts maps most codes to a gRPC status;
 * COORDINATOR_STATUS_TABLE adds the codes only the coordinator (or the modules it calls) throws.
 */
import { Status } from '../wire/status.js';
import type { StatusTable } from '../wire/status.js';

export class CoordinatorError extends Error {
  override name = 'CoordinatorError';
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A run config that cannot be accepted; the message names the field. */
export class ConfigError extends CoordinatorError {
  override name = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'invalid_config', options);
  }
}

/** A lifecycle call (or an RPC) after `close()` began. */
export class CoordinatorClosedError extends CoordinatorError {
  override name = 'CoordinatorClosedError';
  constructor(what: string) {
    super(`coordinator is closed: cannot ${what}; start a new one`, 'closed');
  }
}

/** Work refused because the coordinator is draining (finishing in-flight calls before it closes). */
export class CoordinatorDrainingError extends CoordinatorError {
  override name = 'CoordinatorDrainingError';
  constructor(what: string) {
    super(`coordinator is draining: cannot ${what}; retry against the restarted coordinator`, 'draining');
  }
}

/** An unknown run, round, client or payload. */
export class NotFoundError extends CoordinatorError {
  override name = 'CoordinatorNotFoundError';
  constructor(message: string) {
    super(message, 'not_found');
  }
}

/** A request field with a value the coordinator cannot use; the message names the field. */
export class InvalidRequestError extends CoordinatorError {
  override name = 'InvalidRequestError';
  constructor(message: string) {
    super(message, 'invalid_argument');
  }
}

/** An update or failure report for a round that is not the run's open round. */
export class WrongRoundError extends CoordinatorError {
  override name = 'WrongRoundError';
  constructor(message: string) {
    super(message, 'wrong_round');
  }
}

/** The round stopped accepting (deadline passed, or it is aggregating or finished). */
export class RoundClosedError extends CoordinatorError {
  override name = 'RoundClosedError';
  constructor(
    message: string,
    /** 'late' when the deadline passed, 'round_closed' when the round moved on. */
    code: 'late' | 'round_closed' = 'round_closed',
  ) {
    super(message, code);
  }
}

/** The client was not sampled for this round (or is not tasked in this run). */
export class NotSampledError extends CoordinatorError {
  override name = 'NotSampledError';
  constructor(clientId: string, runId: string, round: number) {
    super(`client ${clientId} is not sampled in round ${round} of run ${runId}; pull a task first`, 'not_sampled');
  }
}

/** A different payload than the one already stored for this run, round and client. */
export class UpdateConflictError extends CoordinatorError {
  override name = 'UpdateConflictError';
  constructor(clientId: string, runId: string, round: number) {
    super(`client ${clientId} already uploaded a different update for round ${round} of run ${runId}; one update per round`, 'update_conflict');
  }
}

/** Why an upload does not fit its task (the kind, the seed pool, the ESSA members); INVALID_ARGUMENT. */
export type InvalidUpdateCode = 'wrong_update_kind' | 'wrong_pool_size' | 'unassigned_member';

/** An upload whose kind or shape is not what its task asked for; the message says what to send instead. */
export class InvalidUpdateError extends CoordinatorError {
  override name = 'InvalidUpdateError';
  constructor(message: string, code: InvalidUpdateCode) {
    super(message, code);
  }
}

/** An operation the run's state does not allow (lowering a budget, raising it on a non-DP run). */
export class RunStateError extends CoordinatorError {
  override name = 'RunStateError';
  constructor(message: string) {
    super(message, 'failed_precondition');
  }
}

/** An unlearning request that repeats one already queued, running or active. */
export class DuplicateRequestError extends CoordinatorError {
  override name = 'DuplicateRequestError';
  constructor(message: string) {
    super(message, 'duplicate_request');
  }
}

/** Codes that the default table (src/wire/status.ts) does not know, as the coordinator's services return them. */
export const COORDINATOR_STATUS_TABLE: StatusTable = Object.freeze({
  closed: Status.UNAVAILABLE,
  not_sampled: Status.FAILED_PRECONDITION,
  update_conflict: Status.ALREADY_EXISTS,
  duplicate_request: Status.ALREADY_EXISTS,
  // src/auth: a public key that is not 32 bytes of Ed25519.
  invalid_key: Status.INVALID_ARGUMENT,
  // src/privacy: the ledger refused a release; the message says how much ε is left.
  invalid_parameter: Status.INVALID_ARGUMENT,
  invalid_update: Status.INVALID_ARGUMENT,
  wrong_update_kind: Status.INVALID_ARGUMENT,
  wrong_pool_size: Status.INVALID_ARGUMENT,
  unassigned_member: Status.INVALID_ARGUMENT,
  // src/aggregation update checks (the ones not in the default table).
  frozen_tensor: Status.INVALID_ARGUMENT,
  bad_example_count: Status.INVALID_ARGUMENT,
  // src/model and src/data when a run config names a model or data set that cannot be used.
  missing_file: Status.INVALID_ARGUMENT,
  bad_config_json: Status.INVALID_ARGUMENT,
  bad_spec: Status.INVALID_ARGUMENT,
  bad_token_id: Status.INVALID_ARGUMENT,
  bad_input: Status.INVALID_ARGUMENT,
});
