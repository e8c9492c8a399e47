/**
 * Errors of the wire layer: tensor payloads that fail validation or integrity checks, malformed call sequences, and
 * (client side) a failed call turned back into an exception. Each carries a `code`; src/wire/status.ts maps codes to
 * gRPC statuses, so a code is what decides how a failure looks to the remote side.
 */
import type { status as Status } from '@grpc/grpc-js';

export type ManifestErrorCode = 'manifest_invalid' | 'dtype_unsupported' | 'name_mismatch' | 'shape_mismatch';
export type ChunkErrorCode = 'chunk_out_of_order' | 'chunk_empty' | 'chunk_extra' | 'chunk_overrun' | 'chunk_hash_mismatch';
export type PayloadErrorCode = 'payload_truncated' | 'payload_hash_mismatch' | 'assembler_closed';
export type LimitErrorCode = 'payload_too_large' | 'too_many_tensors' | 'chunk_too_large';
export type ProtocolErrorCode = 'missing_header' | 'unexpected_header' | 'bad_body' | 'bad_run_spec' | 'platform_unsupported';
export type WireErrorCode = ManifestErrorCode | ChunkErrorCode | PayloadErrorCode | LimitErrorCode | ProtocolErrorCode | 'non_finite';

/** Base of every error thrown by src/wire. */
export class WireError<C extends WireErrorCode = WireErrorCode> extends Error {
  override name = 'WireError';
  constructor(
    message: string,
    readonly code: C,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A manifest that is inconsistent in itself, or that does not describe the tensors the receiver expects. */
export class ManifestError extends WireError<ManifestErrorCode> {
  override name = 'ManifestError';
}

/** A chunk that arrived out of order, past the end of the payload, or with a running digest that does not match. */
export class ChunkError extends WireError<ChunkErrorCode> {
  override name = 'ChunkError';
}

/** The payload as a whole is incomplete or does not hash to the manifest's SHA-256. */
export class PayloadError extends WireError<PayloadErrorCode> {
  override name = 'PayloadError';
}

/** A payload, chunk or tensor count beyond the receiver's configured limits. */
export class LimitError extends WireError<LimitErrorCode> {
  override name = 'LimitError';
}

/** A payload decoded intact but holding NaN or ±Infinity; `tensors` names the offending tensors. */
export class NonFiniteTensorError extends WireError<'non_finite'> {
  override name = 'NonFiniteTensorError';
  constructor(
    readonly tensors: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(`tensors with NaN or infinite values: ${tensors.join(', ')}; the sender must not upload a diverged update`, 'non_finite', options);
  }
}

/** A call whose messages break the protocol: a stream without its header, a header twice, body bytes that do not
 * parse, a run spec whose extra JSON clashes with its typed fields. */
export class ProtocolError extends WireError<ProtocolErrorCode> {
  override name = 'ProtocolError';
}

/**
 * A failed call seen from the client: the gRPC status plus the finer Lethe code the server attached (trailer
 * `lethe-error-code`), or the status name in lower case when it attached none (e.g. a deadline that expired locally).
 */
export class RpcError extends Error {
  override name = 'RpcError';
  constructor(
    message: string,
    readonly status: Status,
    readonly code: string,
    readonly details: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
