/**
 * How NATS failures become the store's named errors (src/store/errors.ts). Every NATS store method rejects with a
 * StoreError; the nats.js error, when there is one, is kept as `cause` (wrapped, not replaced).
 */
import { StoreError, StoreIOError, InvalidArgumentError } from '../errors.js';

/**
 * NATS (or its JetStream) cannot be reached: the server is down, the connection is reconnecting, the request timed
 * out, or JetStream is not enabled. Retryable. Its code is 'busy' so src/wire/status.ts maps it to UNAVAILABLE, like a
 * locked SQLite file; a dedicated 'unavailable' store code would need a change to src/store/errors.ts.
 */
export class NatsUnavailableError extends StoreError {
  override name = 'NatsUnavailableError';
  constructor(
    what: string,
    /** Why, in words: 'connection refused by 127.0.0.1:4222', 'reconnecting', 'request timed out after 5000 ms'. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`NATS unavailable (${reason}) while trying to ${what}; check that nats-server with JetStream runs and retry`, 'busy', options);
  }
}

/** nats.js error codes that mean "the server cannot be reached right now". */
const UNAVAILABLE_CODES: Readonly<Record<string, string>> = {
  CONNECTION_REFUSED: 'connection refused',
  CONNECTION_CLOSED: 'connection closed',
  CONNECTION_DRAINING: 'connection draining',
  CONNECTION_TIMEOUT: 'connection timed out',
  DISCONNECT: 'disconnected',
  TIMEOUT: 'request timed out',
  '503': 'no responders: JetStream is not enabled or has no leader',
};

/** The JetStream API error code for a failed compare-and-set (Nats-Expected-Last-Subject-Sequence). */
export const WRONG_LAST_SEQUENCE = 10071;

/** True when `err` is a JetStream "wrong last sequence": a revision-checked write lost a race. */
export function isWrongLastSequence(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } } | null)?.api_error?.err_code === WRONG_LAST_SEQUENCE;
}

/** Maps anything nats.js throws to a StoreError (ours pass through), keeping the original as `cause`. */
export function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    const reason = UNAVAILABLE_CODES[code];
    if (reason !== undefined) return new NatsUnavailableError(what, reason, { cause: err });
    if (code === 'MAX_PAYLOAD_EXCEEDED') {
      const wrapped = new InvalidArgumentError(`${what}: the document exceeds the NATS server's max_payload; store less in it`);
      return Object.assign(wrapped, { cause: err });
    }
  }
  return new StoreIOError(what, { cause: err });
}
