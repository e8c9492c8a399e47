/**
 * Errors of authentication: each has a stable `code` that src/wire/status.ts maps to a gRPC status (unknown_client,
 * bad_signature, clock_skew, replayed_nonce, malformed_request, the join-token codes and bad_admin_token →
 * UNAUTHENTICATED; revoked_client → PERMISSION_DENIED; invalid_key, key_file and invalid_config are local, never on the wire).
 * Messages say what to do, but never echo secrets.
 */
export type AuthErrorCode =
  | 'bad_signature'
  | 'clock_skew'
  | 'replayed_nonce'
  | 'unknown_client'
  | 'revoked_client'
  | 'malformed_request'
  | 'unknown_join_token'
  | 'expired_join_token'
  | 'exhausted_join_token'
  | 'bad_admin_token'
  | 'invalid_key'
  | 'key_file'
  | 'invalid_config';

export class AuthError extends Error {
  override name = 'AuthError';
  constructor(
    message: string,
    readonly code: AuthErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The signature does not verify under the client's enrolled public key. */
export class BadSignatureError extends AuthError {
  override name = 'BadSignatureError';
  constructor(clientId: string) {
    super(`request signature does not verify for client ${clientId}; sign with the key that was enrolled`, 'bad_signature');
  }
}

/** The request timestamp is too far from the coordinator's clock. */
export class ClockSkewError extends AuthError {
  override name = 'ClockSkewError';
  constructor(
    /** Request timestamp minus coordinator time, ms. */
    readonly skewMs: number,
    readonly maxSkewMs: number,
  ) {
    super(
      `request timestamp is ${Math.round(skewMs / 1000)} s from the coordinator's clock (allowed ±${maxSkewMs / 1000} s); ` +
        'synchronise the client clock (NTP)',
      'clock_skew',
    );
  }
}

/** This (client, nonce) was already accepted inside the replay window. */
export class ReplayedNonceError extends AuthError {
  override name = 'ReplayedNonceError';
  constructor(clientId: string) {
    super(`nonce already used by client ${clientId}; every request needs a fresh random nonce`, 'replayed_nonce');
  }
}

export class UnknownClientError extends AuthError {
  override name = 'UnknownClientError';
  constructor(clientId: string) {
    super(`client ${clientId} is not enrolled; enroll with a join token first`, 'unknown_client');
  }
}

export class RevokedClientError extends AuthError {
  override name = 'RevokedClientError';
  constructor(clientId: string) {
    super(`client ${clientId} has been revoked; ask the operator for a new join token and enroll a new key`, 'revoked_client');
  }
}

/** A request field that cannot be part of a signed message (empty method, newline in the client id, short nonce). */
export class MalformedRequestError extends AuthError {
  override name = 'MalformedRequestError';
  constructor(message: string) {
    super(message, 'malformed_request');
  }
}

export class UnknownJoinTokenError extends AuthError {
  override name = 'UnknownJoinTokenError';
  constructor() {
    super('join token is not valid; ask the operator for a new one (lethe_jt_...)', 'unknown_join_token');
  }
}

export class ExpiredJoinTokenError extends AuthError {
  override name = 'ExpiredJoinTokenError';
  constructor() {
    super('join token has expired; ask the operator for a new one', 'expired_join_token');
  }
}

export class ExhaustedJoinTokenError extends AuthError {
  override name = 'ExhaustedJoinTokenError';
  constructor() {
    super('join token has no uses left; ask the operator for a new one', 'exhausted_join_token');
  }
}

export class BadAdminTokenError extends AuthError {
  override name = 'BadAdminTokenError';
  constructor() {
    super('admin token missing or wrong; use the token in <data-dir>/admin.token', 'bad_admin_token');
  }
}

/** Key material that is not an Ed25519 key of the expected form. */
export class InvalidKeyError extends AuthError {
  override name = 'InvalidKeyError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'invalid_key', options);
  }
}

/** A key or token file that cannot be used (unreadable, or readable by other users). */
export class KeyFileError extends AuthError {
  override name = 'KeyFileError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'key_file', options);
  }
}

/** An authentication setting out of range (a non-positive clock-skew window, a token TTL of zero). */
export class AuthConfigError extends AuthError {
  override name = 'AuthConfigError';
  constructor(message: string) {
    super(message, 'invalid_config');
  }
}
