/**
 * Errors of the durable store. Every store method throws (rejects with) one of these, never a raw SQLite error: the
 * driver's error, when there is one, is kept as `cause`. The `code` is stable so src/wire/status.ts can map it to a
 * gRPC status (not_found → NOT_FOUND, conflict → ALREADY_EXISTS, invalid_argument → INVALID_ARGUMENT,
 * invalid_transition → FAILED_PRECONDITION, busy → UNAVAILABLE, everything else → INTERNAL).
 */
export type StoreErrorCode =
  | 'closed'
  | 'invalid_argument'
  | 'not_found'
  | 'conflict'
  | 'invalid_transition'
  | 'busy'
  | 'schema_version'
  | 'integrity'
  | 'io';

export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    message: string,
    readonly code: StoreErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A call was made after `close()`. */
export class StoreClosedError extends StoreError {
  override name = 'StoreClosedError';
  constructor(what: string) {
    super(`store is closed: cannot ${what}; open a new store`, 'closed');
  }
}

/** An argument failed validation before anything was read or written; the message names the field. */
export class InvalidArgumentError extends StoreError {
  override name = 'InvalidArgumentError';
  constructor(message: string) {
    super(message, 'invalid_argument');
  }
}

/** The entity a call refers to does not exist (an unknown run, round, client, blob, request). */
export class NotFoundError extends StoreError {
  override name = 'NotFoundError';
  constructor(
    readonly entity: string,
    readonly key: string,
  ) {
    super(`${entity} ${key} does not exist`, 'not_found');
  }
}

/** The write would break a uniqueness rule, e.g. enrolling a public key that is already enrolled. */
export class ConflictError extends StoreError {
  override name = 'ConflictError';
  constructor(
    message: string,
    /** What collided: 'client_id', 'public_key', 'run_id', 'round', 'unlearning_id', ... */
    readonly what: string,
    options?: { cause?: unknown },
  ) {
    super(message, 'conflict', options);
  }
}

/**
 * A state change the entity's state machine never allows, or a write the entity's current state refuses (an update
 * for a round that is no longer open). A lost compare-and-set race is not an error: those methods return false.
 */
export class InvalidTransitionError extends StoreError {
  override name = 'InvalidTransitionError';
  constructor(message: string) {
    super(message, 'invalid_transition');
  }
}

/** The database stayed locked by another process for longer than the busy timeout. */
export class StoreBusyError extends StoreError {
  override name = 'StoreBusyError';
  constructor(what: string, options?: { cause?: unknown }) {
    super(`store is busy (locked by another connection) while trying to ${what}; retry later`, 'busy', options);
  }
}

/** The database file was written by a newer Lethe (a schema version this build does not know). */
export class SchemaVersionError extends StoreError {
  override name = 'SchemaVersionError';
  constructor(found: number, supported: number) {
    super(
      `database schema version ${found} is newer than this build supports (${supported}); upgrade Lethe`,
      'schema_version',
    );
  }
}

/** Stored data failed a consistency check (a blob whose bytes no longer match its hash, a corrupt file). */
export class IntegrityError extends StoreError {
  override name = 'IntegrityError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'integrity', options);
  }
}

/** Any other failure of the underlying database (disk full, I/O error, unreadable file). */
export class StoreIOError extends StoreError {
  override name = 'StoreIOError';
  constructor(what: string, options?: { cause?: unknown }) {
    super(`store failed to ${what}: ${describe(options?.cause)}`, 'io', options);
  }
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
