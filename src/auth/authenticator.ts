/**
 * The coordinator's check of a signed client request, against enrolled clients and seen nonces in the store.
 * Order matters: the client must exist (its key is needed), the timestamp must be fresh, the signature must verify,
 * and only then are revocation reported and the nonce recorded, so an unauthenticated caller can neither burn a
 * client's nonces nor learn whether it was revoked.
 */
import type { KeyObject } from 'node:crypto';
import type { ClientRecord, Store } from '../store/store.js';
import {
  BadSignatureError,
  MalformedRequestError,
  ReplayedNonceError,
  RevokedClientError,
  UnknownClientError,
} from './errors.js';
import { importPublicKeyRaw } from './keys.js';
import { DEFAULT_NONCE_WINDOW, NonceWindow, type NonceWindowConfig } from './replay.js';
import { checkRequestFields, verifyRequest, type SignedRequestFields } from './signing.js';

export interface SignedRequest extends SignedRequestFields {
  /** Ed25519 signature over signingMessage(fields), 64 bytes. */
  readonly signature: Uint8Array;
}

export interface AuthenticatorConfig {
  /** DEFAULT_NONCE_WINDOW (±300 s): the accepted clock skew, which is also how long nonces are remembered. */
  readonly window: NonceWindowConfig;
  /** 60_000: forget nonces that left the window at most this often (on the first request after it elapses). */
  readonly pruneEveryMs: number;
  /** Date.now: the coordinator's clock (injected for tests). */
  readonly clock: () => number;
}

export const DEFAULT_AUTHENTICATOR_CONFIG: AuthenticatorConfig = Object.freeze({
  window: DEFAULT_NONCE_WINDOW,
  pruneEveryMs: 60_000,
  clock: Date.now,
});

/** Verification keys kept imported (see RequestAuthenticator.keyOf); beyond this many, the oldest go first. */
const MAX_CACHED_KEYS = 10_000;

export class RequestAuthenticator {
  readonly window: NonceWindow;
  private readonly config: AuthenticatorConfig;
  private lastPruneMs = -Infinity;
  private readonly keys = new Map<string, KeyObject>();

  constructor(
    private readonly store: Pick<Store, 'clients' | 'nonces'>,
    overrides: Partial<AuthenticatorConfig> = {},
  ) {
    this.config = Object.freeze({ ...DEFAULT_AUTHENTICATOR_CONFIG, ...overrides });
    this.window = new NonceWindow(this.config.window);
  }

  /**
   * Returns the calling client when the request is authentic and fresh. Throws MalformedRequestError,
   * UnknownClientError, ClockSkewError, BadSignatureError, RevokedClientError or ReplayedNonceError (src/auth/errors.ts);
   * store failures pass through as StoreErrors.
   */
  async authenticate(request: SignedRequest): Promise<ClientRecord> {
    checkRequestFields(request);
    if (request.clientId === '') throw new MalformedRequestError('client id is empty: only Enroll is signed without one');
    const client = await this.store.clients.get(request.clientId);
    if (client === undefined) throw new UnknownClientError(request.clientId);
    const now = this.config.clock();
    this.window.checkTimestamp(request.timestampMs, now);
    if (!verifyRequest(this.keyOf(client.publicKey), request, request.signature)) {
      throw new BadSignatureError(request.clientId);
    }
    if (client.revokedAt !== null) throw new RevokedClientError(request.clientId);
    if (!(await this.store.nonces.insertIfAbsent(client.id, request.nonce, request.timestampMs))) {
      throw new ReplayedNonceError(client.id);
    }
    if (now - this.lastPruneMs >= this.config.pruneEveryMs) await this.pruneNonces();
    return client;
  }

  /**
   * The KeyObject of a raw public key, imported once: importing (through JWK) cost about a fifth of a signature check
   * on every request. Keyed by the key's bytes, so a cached entry can never belong to another key.
   */
  private keyOf(raw: Uint8Array): KeyObject {
    const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
    let key = this.keys.get(id);
    if (key === undefined) {
      key = importPublicKeyRaw(raw);
      if (this.keys.size >= MAX_CACHED_KEYS) this.keys.delete(this.keys.keys().next().value!);
      this.keys.set(id, key);
    }
    return key;
  }

  /** Forgets every nonce the clock check alone now refuses; returns how many. */
  async pruneNonces(): Promise<number> {
    const now = this.config.clock();
    this.lastPruneMs = now;
    return this.store.nonces.pruneBefore(this.window.pruneCutoff(now));
  }
}
