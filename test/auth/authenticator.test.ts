import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RequestAuthenticator, type SignedRequest } from '../../src/auth/authenticator.js';
import {
  BadSignatureError,
  ClockSkewError,
  MalformedRequestError,
  ReplayedNonceError,
  RevokedClientError,
  UnknownClientError,
} from '../../src/auth/errors.js';
import { clientIdFor, exportPublicKeyRaw, generateEd25519KeyPair, type Ed25519KeyPair } from '../../src/auth/keys.js';
import { newNonce, signRequest } from '../../src/auth/signing.js';
import { openSqliteStore, sqliteStorePath, type SqliteStore } from '../../src/store/sqlite.js';

describe('request authenticator', () => {
  let dir: string;
  let store: SqliteStore;
  let now: number;
  let keys: Ed25519KeyPair;
  let clientId: string;
  let auth: RequestAuthenticator;

  function request(overrides: Partial<SignedRequest> = {}, signer = keys.privateKey): SignedRequest {
    const fields = {
      method: '/lethe.v1.FleetService/PullTask',
      clientId,
      timestampMs: now,
      nonce: newNonce(),
      payload: new Uint8Array([1, 2, 3]),
      ...overrides,
    };
    return { ...fields, signature: signRequest(signer, fields), ...overrides };
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lethe-auth-'));
    store = openSqliteStore(sqliteStorePath(dir));
    now = 1_700_000_000_000;
    keys = generateEd25519KeyPair();
    const publicKey = exportPublicKeyRaw(keys.publicKey);
    clientId = clientIdFor(publicKey);
    await store.clients.enroll({ id: clientId, name: 'node', publicKey, capabilities: {} });
    auth = new RequestAuthenticator(store, { clock: () => now });
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('authenticator – accepts a fresh request signed by the enrolled key and returns the client', async () => {
    const client = await auth.authenticate(request());
    expect(client.id).toBe(clientId);
  });

  it('authenticator – refuses an unknown client', async () => {
    await expect(auth.authenticate(request({ clientId: 'c_0000000000000000' }))).rejects.toBeInstanceOf(UnknownClientError);
  });

  it('authenticator – refuses a revoked client even with a valid signature', async () => {
    await store.clients.revoke(clientId);
    await expect(auth.authenticate(request())).rejects.toBeInstanceOf(RevokedClientError);
  });

  it('authenticator – refuses a request signed by another key or altered after signing', async () => {
    await expect(auth.authenticate(request({}, generateEd25519KeyPair().privateKey))).rejects.toBeInstanceOf(BadSignatureError);
    const signed = request();
    await expect(auth.authenticate({ ...signed, payload: new Uint8Array([9]) })).rejects.toBeInstanceOf(BadSignatureError);
    await expect(auth.authenticate({ ...signed, method: '/lethe.v1.FleetService/PushUpdate' })).rejects.toBeInstanceOf(BadSignatureError);
  });

  it('authenticator – checks each client against its own key once keys are cached', async () => {
    const other = generateEd25519KeyPair();
    const otherKey = exportPublicKeyRaw(other.publicKey);
    const otherId = clientIdFor(otherKey);
    await store.clients.enroll({ id: otherId, name: 'other', publicKey: otherKey, capabilities: {} });
    // Both keys are imported and cached by these successful checks...
    expect((await auth.authenticate(request())).id).toBe(clientId);
    expect((await auth.authenticate(request({ clientId: otherId }, other.privateKey))).id).toBe(otherId);
    // ...and neither client's key then verifies a request in the other's name.
    await expect(auth.authenticate(request({ clientId: otherId }))).rejects.toBeInstanceOf(BadSignatureError);
    await expect(auth.authenticate(request({}, other.privateKey))).rejects.toBeInstanceOf(BadSignatureError);
  });

  it('authenticator – a forged request does not burn the nonce of the real one', async () => {
    const genuine = request();
    await expect(auth.authenticate({ ...genuine, payload: new Uint8Array([7]) })).rejects.toBeInstanceOf(BadSignatureError);
    await expect(auth.authenticate(genuine)).resolves.toMatchObject({ id: clientId });
  });

  it('authenticator – refuses a timestamp more than 300 s from the clock', async () => {
    await expect(auth.authenticate(request({ timestampMs: now - 300_001 }))).rejects.toBeInstanceOf(ClockSkewError);
    await expect(auth.authenticate(request({ timestampMs: now + 300_001 }))).rejects.toBeInstanceOf(ClockSkewError);
    await expect(auth.authenticate(request({ timestampMs: now + 299_000 }))).resolves.toBeDefined();
  });

  it('authenticator – refuses a replayed request, also after the store was reopened', async () => {
    const once = request();
    await auth.authenticate(once);
    await expect(auth.authenticate(once)).rejects.toBeInstanceOf(ReplayedNonceError);
    store.close();
    store = openSqliteStore(sqliteStorePath(dir));
    const restarted = new RequestAuthenticator(store, { clock: () => now });
    await expect(restarted.authenticate(once)).rejects.toBeInstanceOf(ReplayedNonceError);
  });

  it('authenticator – forgets old nonces, whose replays the clock check still refuses', async () => {
    const old = request();
    await auth.authenticate(old);
    now += 301_000;
    expect(await auth.pruneNonces()).toBe(1);
    await expect(auth.authenticate(old)).rejects.toBeInstanceOf(ClockSkewError);
  });

  it('authenticator – refuses malformed fields before touching the store', async () => {
    await expect(auth.authenticate({ ...request(), nonce: new Uint8Array(4) })).rejects.toBeInstanceOf(MalformedRequestError);
    await expect(auth.authenticate(request({ clientId: '' }))).rejects.toBeInstanceOf(MalformedRequestError);
  });
});
