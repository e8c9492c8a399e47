/**
 * Errors ↔ gRPC statuses, one function each way (after grpc-js server-call.ts / call.ts).
 *
 * Server side, `toStatus` maps any thrown value to a status by the `code` of the first error in its cause chain
 * whose code is known: the error's own message becomes the status details (Lethe messages are written for the
 * remote user), and the code travels in the trailer `lethe-error-code`. Anything else becomes INTERNAL with a
 * generic message, so stack traces, SQL and paths never leave the process; the caller logs the original.
 *
 * Client side, `fromStatus` turns a ServiceError into an RpcError whose message names the status and the code.
 */
import { Metadata, status as Status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { RpcError } from './errors.js';

export { Status };

/** Trailing-metadata key carrying the Lethe error code of a failed call. */
export const ERROR_CODE_KEY = 'lethe-error-code';

/** Error `code` → status. Extend per server with `toStatus(err, extra)`. */
export type StatusTable = Readonly<Record<string, Status>>;

/**
 * The codes Lethe modules throw and how they look on the wire. Codes not listed are internal (→ INTERNAL).
 * Generic names (not_found, failed_precondition, ...) are there for modules without a more specific code.
 */
export const DEFAULT_STATUS_TABLE: StatusTable = Object.freeze({
  // Malformed input (src/wire codec and protocol, src/aggregation and src/tensors update checks).
  invalid_argument: Status.INVALID_ARGUMENT,
  invalid_config: Status.INVALID_ARGUMENT,
  malformed_request: Status.INVALID_ARGUMENT,
  manifest_invalid: Status.INVALID_ARGUMENT,
  dtype_unsupported: Status.INVALID_ARGUMENT,
  name_mismatch: Status.INVALID_ARGUMENT,
  shape_mismatch: Status.INVALID_ARGUMENT,
  missing_tensor: Status.INVALID_ARGUMENT,
  unexpected_tensor: Status.INVALID_ARGUMENT,
  chunk_out_of_order: Status.INVALID_ARGUMENT,
  chunk_empty: Status.INVALID_ARGUMENT,
  chunk_extra: Status.INVALID_ARGUMENT,
  chunk_overrun: Status.INVALID_ARGUMENT,
  chunk_hash_mismatch: Status.INVALID_ARGUMENT,
  payload_truncated: Status.INVALID_ARGUMENT,
  payload_hash_mismatch: Status.INVALID_ARGUMENT,
  non_finite: Status.INVALID_ARGUMENT,
  missing_header: Status.INVALID_ARGUMENT,
  unexpected_header: Status.INVALID_ARGUMENT,
  bad_body: Status.INVALID_ARGUMENT,
  bad_run_spec: Status.INVALID_ARGUMENT,
  // Over a limit.
  resource_exhausted: Status.RESOURCE_EXHAUSTED,
  payload_too_large: Status.RESOURCE_EXHAUSTED,
  too_many_tensors: Status.RESOURCE_EXHAUSTED,
  chunk_too_large: Status.RESOURCE_EXHAUSTED,
  // Who is calling (src/auth).
  unauthenticated: Status.UNAUTHENTICATED,
  bad_signature: Status.UNAUTHENTICATED,
  clock_skew: Status.UNAUTHENTICATED,
  replayed_nonce: Status.UNAUTHENTICATED,
  unknown_client: Status.UNAUTHENTICATED,
  unknown_join_token: Status.UNAUTHENTICATED,
  expired_join_token: Status.UNAUTHENTICATED,
  exhausted_join_token: Status.UNAUTHENTICATED,
  bad_admin_token: Status.UNAUTHENTICATED,
  permission_denied: Status.PERMISSION_DENIED,
  revoked_client: Status.PERMISSION_DENIED,
  // State (src/store, the coordinator's round logic, the privacy ledger).
  not_found: Status.NOT_FOUND,
  already_exists: Status.ALREADY_EXISTS,
  conflict: Status.ALREADY_EXISTS,
  failed_precondition: Status.FAILED_PRECONDITION,
  invalid_transition: Status.FAILED_PRECONDITION,
  wrong_round: Status.FAILED_PRECONDITION,
  late: Status.FAILED_PRECONDITION,
  round_closed: Status.FAILED_PRECONDITION,
  budget_exceeded: Status.FAILED_PRECONDITION,
  no_budget: Status.FAILED_PRECONDITION,
  deadline_exceeded: Status.DEADLINE_EXCEEDED,
  aborted: Status.ABORTED,
  cancelled: Status.CANCELLED,
  unimplemented: Status.UNIMPLEMENTED,
  // Try again later.
  unavailable: Status.UNAVAILABLE,
  busy: Status.UNAVAILABLE,
  draining: Status.UNAVAILABLE,
});

const INTERNAL_DETAILS = 'internal error; the coordinator logged the details';

function codeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The status for a thrown value: the first error in the `cause` chain (at most 8 deep) whose string `code` is in
 * `extra` or DEFAULT_STATUS_TABLE decides; otherwise INTERNAL with a generic message.
 */
export function toStatus(err: unknown, extra: StatusTable = {}): StatusObject {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    const code = codeOf(current);
    const status = code === undefined ? undefined : (extra[code] ?? DEFAULT_STATUS_TABLE[code]);
    if (code !== undefined && status !== undefined) {
      const metadata = new Metadata();
      metadata.set(ERROR_CODE_KEY, code);
      const message = current instanceof Error ? current.message : code;
      return { code: status, details: message, metadata };
    }
    current = current instanceof Error ? current.cause : undefined;
  }
  return { code: Status.INTERNAL, details: INTERNAL_DETAILS, metadata: new Metadata() };
}

/** "NOT_FOUND" for Status.NOT_FOUND. */
export function statusName(status: Status): string {
  return Status[status] ?? `STATUS_${status}`;
}

/**
 * The client-side error for a failed call. The message reads "<STATUS> (<code>): <details>"; `code` is the server's
 * Lethe code, or the status name in lower case when there is none (DEADLINE_EXCEEDED raised by the local deadline,
 * UNAVAILABLE when nothing listens). The ServiceError is kept as `cause`.
 */
export function fromStatus(err: ServiceError): RpcError {
  const name = statusName(err.code);
  const attached = err.metadata?.get(ERROR_CODE_KEY)[0];
  const code = typeof attached === 'string' && attached !== '' ? attached : name.toLowerCase();
  const details = err.details ?? '';
  return new RpcError(`${name} (${code}): ${details}`, err.code, code, details, { cause: err });
}

/** True for a grpc-js ServiceError (an Error with a numeric status code and metadata). */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'metadata' in err;
}
