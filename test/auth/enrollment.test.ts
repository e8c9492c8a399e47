import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { enrollClient, issueJoinToken, redeemJoinToken, type EnrollmentRequest } from '../../src/auth/enrollment.js';
import {
  BadSignatureError,
  ClockSkewError,
  ExhaustedJoinTokenError,
  ExpiredJoinTokenError,
  MalformedRequestError,
  UnknownJoinTokenError,
} from '../../src/auth/errors.js';
import { generateJoinToken, hashJoinToken, isJoinToken } from '../../src/auth/join-token.js';
import { clientIdFor, exportPublicKeyRaw, generateEd25519KeyPair } from '../../src/auth/keys.js';
import { newNonce, signRequest } from '../../src/auth/signing.js';
import { ConflictError } from '../../src/store/errors.js';
import { openSqliteStore, sqliteStorePath, type SqliteStore } from '../../src/store/sqlite.js';

const NOW = 1_700_000_000_000;

/** What a new client sends: its key, and the call signed with that key. */
function enrollment(joinToken: string, keys = generateEd25519KeyPair(), timestampMs = NOW): EnrollmentRequest {
  const publicKey = exportPublicKeyRaw(keys.publicKey);
  const fields = {
    method: '/lethe.v1.EnrollmentService/Enroll',
    clientId: '',
    timestampMs,
    nonce: newNonce(),
    payload: publicKey,
  };
  return { joinToken, name: 'laptop', publicKey, capabilities: { memoryMb: 1024 }, proof: { ...fields, signature: signRequest(keys.privateKey, fields) } };
}

describe('join tokens and enrollment', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lethe-enroll-'));
    store = openSqliteStore(sqliteStorePath(dir));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('join token – has the lethe_jt_ prefix, 32 random bytes, and only its hash is stored', async () => {
    const grant = await issueJoinToken(store, { ttlMs: 60_000, nowMs: NOW });
    expect(isJoinToken(grant.token)).toBe(true);
    expect(Buffer.from(grant.token.slice('lethe_jt_'.length), 'base64url')).toHaveLength(32);
    expect(generateJoinToken()).not.toBe(grant.token);
    expect(await store.joinTokens.get(hashJoinToken(grant.token))).toMatchObject({ expiresAt: NOW + 60_000, usesLeft: 1 });
  });

  it('enrollment – enrolls a client under the id derived from its key and spends one use', async () => {
    const grant = await issueJoinToken(store, { ttlMs: 60_000, uses: 2, nowMs: NOW });
    const request = enrollment(grant.token);
    const client = await enrollClient(store, request, { nowMs: NOW });
    expect(client).toMatchObject({ id: clientIdFor(request.publicKey), name: 'laptop', capabilities: { memoryMb: 1024 } });
    expect((await store.joinTokens.get(hashJoinToken(grant.token)))?.usesLeft).toBe(1);
  });

  it('enrollment – a token is refused once its uses are spent', async () => {
    const grant = await issueJoinToken(store, { ttlMs: 60_000, uses: 2, nowMs: NOW });
    await enrollClient(store, enrollment(grant.token), { nowMs: NOW });
    expect(await redeemJoinToken(store, grant.token, NOW)).toBe(0);
    await expect(enrollClient(store, enrollment(grant.token), { nowMs: NOW })).rejects.toBeInstanceOf(ExhaustedJoinTokenError);
  });

  it('enrollment – an expired, unknown or malformed token is refused by name', async () => {
    const grant = await issueJoinToken(store, { ttlMs: 1000, nowMs: NOW });
    await expect(enrollClient(store, enrollment(grant.token, undefined, NOW + 1000), { nowMs: NOW + 1000 })).rejects.toBeInstanceOf(
      ExpiredJoinTokenError,
    );
    await expect(enrollClient(store, enrollment(generateJoinToken()), { nowMs: NOW })).rejects.toBeInstanceOf(UnknownJoinTokenError);
    await expect(enrollClient(store, enrollment('lethe_jt_short'), { nowMs: NOW })).rejects.toBeInstanceOf(UnknownJoinTokenError);
  });

  it('enrollment – a proof not signed by the new key, stale, or naming a client is refused without spending the token', async () => {
    const grant = await issueJoinToken(store, { ttlMs: 60_000, nowMs: NOW });
    const forged = enrollment(grant.token);
    const other = enrollment(grant.token);
    await expect(
      enrollClient(store, { ...forged, proof: { ...forged.proof, signature: other.proof.signature } }, { nowMs: NOW }),
    ).rejects.toBeInstanceOf(BadSignatureError);
    await expect(enrollClient(store, enrollment(grant.token, undefined, NOW - 301_000), { nowMs: NOW })).rejects.toBeInstanceOf(
      ClockSkewError,
    );
    const named = enrollment(grant.token);
    await expect(enrollClient(store, { ...named, proof: { ...named.proof, clientId: 'c_0000000000000000' } }, { nowMs: NOW })).rejects.toBeInstanceOf(
      MalformedRequestError,
    );
    expect((await store.joinTokens.get(hashJoinToken(grant.token)))?.usesLeft).toBe(1);
  });

  it('enrollment – enrolling the same key twice is a conflict and leaves the token use unspent', async () => {
    const grant = await issueJoinToken(store, { ttlMs: 60_000, uses: 3, nowMs: NOW });
    const keys = generateEd25519KeyPair();
    await enrollClient(store, enrollment(grant.token, keys), { nowMs: NOW });
    await expect(enrollClient(store, enrollment(grant.token, keys), { nowMs: NOW })).rejects.toBeInstanceOf(ConflictError);
    expect((await store.joinTokens.get(hashJoinToken(grant.token)))?.usesLeft).toBe(2);
  });
});
