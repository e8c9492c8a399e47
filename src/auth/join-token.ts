/**
 * Join tokens: single- or few-use secrets an operator hands to a new client so it can enroll its public key. The
 * token is `lethe_jt_` + 32 random bytes in base64url; only its SHA-256 is stored, so a copy of the database does
 * not let anyone enroll.
 */
import { createHash, randomBytes } from 'node:crypto';
import { UnknownJoinTokenError } from './errors.js';

export const JOIN_TOKEN_PREFIX = 'lethe_jt_';
const TOKEN_PATTERN = /^lethe_jt_[A-Za-z0-9_-]{43}$/;

export function generateJoinToken(): string {
  return JOIN_TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function isJoinToken(value: unknown): value is string {
  return typeof value === 'string' && TOKEN_PATTERN.test(value);
}

/** SHA-256 of the token's UTF-8 bytes (32 bytes), the key it is stored under. UnknownJoinTokenError if malformed. */
export function hashJoinToken(token: string): Uint8Array {
  if (!isJoinToken(token)) throw new UnknownJoinTokenError();
  return new Uint8Array(createHash('sha256').update(token, 'utf8').digest());
}
