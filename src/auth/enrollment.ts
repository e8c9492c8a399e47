/**
 * Issuing join tokens and enrolling clients with them. The store spends the token use and adds the client in one
 * transaction, so a token is never consumed by an enrollment that failed; refusals become named errors here.
 */
import type { ClientRecord, JsonObject, Store, TokenRefusal } from '../store/store.js';
import type { SignedRequest } from './authenticator.js';
import {
  AuthConfigError,
  BadSignatureError,
  ExhaustedJoinTokenError,
  ExpiredJoinTokenError,
  MalformedRequestError,
  UnknownJoinTokenError,
} from './errors.js';
import { generateJoinToken, hashJoinToken } from './join-token.js';
import { clientIdFor, importPublicKeyRaw } from './keys.js';
import { NonceWindow } from './replay.js';
import { verifyRequest } from './signing.js';

export interface JoinTokenGrant {
  /** The secret to hand to the client operator; shown once, never stored. */
  readonly token: string;
  readonly expiresAt: number;
  readonly uses: number;
}

/** Creates a token valid for `ttlMs` from `nowMs` and `uses` enrollments (default 1). */
export async function issueJoinToken(
  store: Pick<Store, 'joinTokens'>,
  options: { readonly ttlMs: number; readonly uses?: number; readonly nowMs: number },
): Promise<JoinTokenGrant> {
  const uses = options.uses ?? 1;
  if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs <= 0) {
    throw new AuthConfigError(`join token ttl must be a positive number of milliseconds, got ${options.ttlMs}`);
  }
  if (!Number.isSafeInteger(uses) || uses < 1) throw new AuthConfigError(`join token uses must be a positive integer, got ${uses}`);
  const token = generateJoinToken();
  const expiresAt = options.nowMs + options.ttlMs;
  await store.joinTokens.create({ hash: hashJoinToken(token), expiresAt, uses });
  return { token, expiresAt, uses };
}

export interface EnrollmentRequest {
  readonly joinToken: string;
  readonly name: string;
  /** The new client's raw Ed25519 public key (32 bytes). */
  readonly publicKey: Uint8Array;
  readonly capabilities: JsonObject;
  /**
   * The Enroll call's RequestAuth with its signed body: signed by the new key with an empty client id (see
   * proto/lethe/v1/enrollment.proto), which proves the caller holds the private key. Checked for freshness too (its
   * nonce is not recorded: the client does not exist yet, and a replayed enrollment is refused as a duplicate key).
   */
  readonly proof: SignedRequest;
}

/**
 * Enrolls a client under the id derived from its key. Throws UnknownJoinTokenError, ExpiredJoinTokenError,
 * ExhaustedJoinTokenError, InvalidKeyError, BadSignatureError or ClockSkewError; a key that is already enrolled is
 * the store's ConflictError ('public_key').
 */
export async function enrollClient(
  store: Pick<Store, 'clients'>,
  request: EnrollmentRequest,
  options: { readonly nowMs: number; readonly window?: NonceWindow },
): Promise<ClientRecord> {
  const hash = hashJoinToken(request.joinToken);
  const publicKey = importPublicKeyRaw(request.publicKey);
  const id = clientIdFor(request.publicKey);
  if (request.proof.clientId !== '') throw new MalformedRequestError('an Enroll request is signed with an empty client id');
  (options.window ?? new NonceWindow()).checkTimestamp(request.proof.timestampMs, options.nowMs);
  if (!verifyRequest(publicKey, request.proof, request.proof.signature)) throw new BadSignatureError(id);
  const outcome = await store.clients.enroll(
    { id, name: request.name, publicKey: request.publicKey, capabilities: request.capabilities },
    { hash, nowMs: options.nowMs },
  );
  if (!outcome.ok) throw refusalError(outcome.reason);
  return outcome.client;
}

/** Spends one use of a token outside enrollment (e.g. a CLI check); returns the uses left. */
export async function redeemJoinToken(store: Pick<Store, 'joinTokens'>, token: string, nowMs: number): Promise<number> {
  const outcome = await store.joinTokens.redeem(hashJoinToken(token), nowMs);
  if (!outcome.ok) throw refusalError(outcome.reason);
  return outcome.usesLeft;
}

function refusalError(reason: TokenRefusal): Error {
  switch (reason) {
    case 'unknown':
      return new UnknownJoinTokenError();
    case 'expired':
      return new ExpiredJoinTokenError();
    case 'exhausted':
      return new ExhaustedJoinTokenError();
  }
}
