/**
 * Request signatures. Every client call carries (client id, timestamp, nonce, signature) and the signature is
 * Ed25519 over exactly these UTF-8 bytes, lines joined by "\n":
 *
 *   lethe.v1
 *   <method full name, e.g. /lethe.v1.FleetService/PullTask>
 *   <client id; empty only in EnrollmentService/Enroll, where the key being enrolled signs>
 *   <timestamp, ms since the epoch, decimal>
 *   <hex(nonce)>
 *   <hex(sha256(payload))>
 *
 * The method binds the signature to one RPC, the payload hash to one request body, and timestamp + nonce let the
 * coordinator refuse replays (replay.ts). No field may contain a newline, so the message parses one way only.
 * This is the string proto/lethe/v1/common.proto (RequestAuth) specifies.
 */
import { createHash, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { MalformedRequestError } from './errors.js';

export const SIGNATURE_CONTEXT = 'lethe.v1';
export const SIGNATURE_BYTES = 64;
/** Nonces are random and at least this long, so two honest requests never collide. */
export const MIN_NONCE_BYTES = 16;
export const MAX_NONCE_BYTES = 64;

export interface SignedRequestFields {
  /** gRPC method full name, "/package.Service/Method". */
  readonly method: string;
  readonly clientId: string;
  readonly timestampMs: number;
  readonly nonce: Uint8Array;
  /** The request's signed payload bytes. */
  readonly payload: Uint8Array;
}

/** A fresh random nonce of MIN_NONCE_BYTES. */
export function newNonce(): Uint8Array {
  return new Uint8Array(randomBytes(MIN_NONCE_BYTES));
}

/** Throws MalformedRequestError naming the first field that cannot be signed. */
export function checkRequestFields(fields: SignedRequestFields): void {
  const { method, clientId, timestampMs, nonce, payload } = fields;
  if (typeof method !== 'string' || !/^\/[^\s/]+\/[^\s/]+$/.test(method)) {
    throw new MalformedRequestError(`method must be a full gRPC method name like /lethe.v1.FleetService/PullTask, got ${JSON.stringify(method)}`);
  }
  if (typeof clientId !== 'string' || clientId.length > 128 || /[\u0000-\u001f\u007f]/.test(clientId)) {
    throw new MalformedRequestError('client id must be at most 128 characters without control characters');
  }
  if (typeof timestampMs !== 'number' || !Number.isSafeInteger(timestampMs) || timestampMs < 0) {
    throw new MalformedRequestError(`timestamp must be a non-negative integer of milliseconds, got ${String(timestampMs)}`);
  }
  if (!(nonce instanceof Uint8Array) || nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES) {
    throw new MalformedRequestError(`nonce must be ${MIN_NONCE_BYTES}-${MAX_NONCE_BYTES} random bytes`);
  }
  if (!(payload instanceof Uint8Array)) throw new MalformedRequestError('payload must be bytes');
}

/** The exact bytes that are signed (see the module comment). */
export function signingMessage(fields: SignedRequestFields): Buffer {
  checkRequestFields(fields);
  const payloadHash = createHash('sha256').update(fields.payload).digest('hex');
  const lines = [
    SIGNATURE_CONTEXT,
    fields.method,
    fields.clientId,
    String(fields.timestampMs),
    Buffer.from(fields.nonce.buffer, fields.nonce.byteOffset, fields.nonce.byteLength).toString('hex'),
    payloadHash,
  ];
  return Buffer.from(lines.join('\n'), 'utf8');
}

/** Ed25519 signature (64 bytes) of the request. Throws MalformedRequestError for fields that cannot be signed. */
export function signRequest(privateKey: KeyObject, fields: SignedRequestFields): Uint8Array {
  return new Uint8Array(sign(null, signingMessage(fields), privateKey));
}

/** True only for a well-formed request whose 64-byte signature verifies under `publicKey`. */
export function verifyRequest(publicKey: KeyObject, fields: SignedRequestFields, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false;
  let message: Buffer;
  try {
    message = signingMessage(fields);
  } catch {
    return false; // a malformed request has no valid signature
  }
  return verify(null, message, publicKey, signature);
}
