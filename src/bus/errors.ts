/** Errors of the event bus: named, with a stable `code` (src/wire/status.ts maps the codes) and a chained cause. */
export type BusErrorCode = 'closed' | 'draining' | 'invalid_argument' | 'unavailable';

export class BusError extends Error {
  override name = 'BusError';
  constructor(
    message: string,
    readonly code: BusErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A call was made after close() or drain() finished. */
export class BusClosedError extends BusError {
  override name = 'BusClosedError';
  constructor(what: string, options?: { cause?: unknown }) {
    super(`event bus is closed: cannot ${what}; connect a new bus`, 'closed', options);
  }
}

/** A publish or subscribe while drain() is running. */
export class BusDrainingError extends BusError {
  override name = 'BusDrainingError';
  constructor(what: string) {
    super(`event bus is draining: cannot ${what}`, 'draining');
  }
}

/** A subject pattern or an event that is not well-formed; the message says which part. */
export class InvalidEventError extends BusError {
  override name = 'InvalidEventError';
  constructor(message: string) {
    super(message, 'invalid_argument');
  }
}

/** The NATS server cannot be reached (at connect, or the connection ended with an error). */
export class BusUnavailableError extends BusError {
  override name = 'BusUnavailableError';
  constructor(what: string, reason: string, options?: { cause?: unknown }) {
    super(`NATS unavailable (${reason}) while trying to ${what}; check that nats-server runs and retry`, 'unavailable', options);
  }
}
