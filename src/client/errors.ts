/**
 * Errors of the client node. Each carries a stable `code`; the CLI prints name, code and message, and maps a
 * refusal the node cannot fix by itself (revoked, unknown to the coordinator, bad join token) to its own exit code.
 */

export type ClientErrorCode =
  | 'closed'
  | 'draining'
  | 'not_enrolled'
  | 'identity'
  | 'already_enrolled'
  | 'enrollment_refused'
  | 'refused'
  | 'bad_task'
  | 'data'
  | 'unsupported_mode'
  | 'privacy_budget';

export class ClientError extends Error {
  override name = 'ClientError';
  constructor(
    message: string,
    readonly code: ClientErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A lifecycle call after `close()` began (nats.js ClosedConnectionError). */
export class ClientClosedError extends ClientError {
  override name = 'ClientClosedError';
  constructor(what: string) {
    super(`client node is closed: cannot ${what}; start a new one`, 'closed');
  }
}

/** A call that needs a running node while it is draining. */
export class ClientDrainingError extends ClientError {
  override name = 'ClientDrainingError';
  constructor(what: string) {
    super(`client node is draining: cannot ${what}`, 'draining');
  }
}

/** The data directory holds no identity (or an unreadable one). */
export class IdentityError extends ClientError {
  override name = 'IdentityError';
  constructor(message: string, code: 'not_enrolled' | 'identity' | 'already_enrolled' = 'identity', options?: { cause?: unknown }) {
    super(message, code, options);
  }
}

/** Enrollment refused by the coordinator: bad, expired or used-up join token, or a key already enrolled. */
export class EnrollmentRefusedError extends ClientError {
  override name = 'EnrollmentRefusedError';
  constructor(
    message: string,
    /** The coordinator's lethe-error-code, e.g. "expired_join_token". */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(message, 'enrollment_refused', options);
  }
}

/**
 * The coordinator refuses this client for good (revoked, or it does not know the client id): retrying cannot help,
 * so the node stops and `closed()` resolves with this error.
 */
export class ClientRefusedError extends ClientError {
  override name = 'ClientRefusedError';
  constructor(
    message: string,
    /** The coordinator's lethe-error-code, e.g. "revoked_client". */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(message, 'refused', options);
  }
}

/** A task this client cannot run as given (inconsistent fields, labels that differ from the local data). */
export class TaskError extends ClientError {
  override name = 'TaskError';
  constructor(message: string, code: 'bad_task' | 'data' | 'unsupported_mode' = 'bad_task', options?: { cause?: unknown }) {
    super(message, code, options);
  }
}
