/**
 * Enrollment with join tokens and the checks on every signed call, against a live coordinator.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTokenPath } from '../../src/auth/admin-token.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { RpcError } from '../../src/wire/errors.js';
import { callUnary } from '../../src/wire/services.js';
import { newNonce } from '../../src/auth/signing.js';
import { Admin, adminMetadata, proto, tempDir, TestClient } from './helpers.js';

async function failure(p: Promise<unknown>): Promise<RpcError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RpcError);
  return err as RpcError;
}

describe('coordinator enrollment and signed calls', () => {
  const dir = tempDir('lethe-enroll-');
  let skew = 0;
  const clock = (): number => Date.now() + skew;
  let coordinator: Coordinator;
  let admin: Admin;
  const open: TestClient[] = [];
  const client = (): TestClient => {
    const c = new TestClient(coordinator.address, clock);
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, clock, log: () => undefined });
    await coordinator.start();
    admin = new Admin(coordinator.address, coordinator.adminToken);
  });

  afterAll(async () => {
    for (const c of open) c.close();
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  it('enrollment – the admin token is written to the data dir with mode 0600', () => {
    const mode = statSync(adminTokenPath(join(dir.path, 'data'))).mode & 0o777;
    expect(mode).toBe(0o600);
  });

  it('enrollment – a valid token enrolls once per use; an exhausted token is refused (UNAUTHENTICATED)', async () => {
    const token = await admin.joinToken(1);
    const first = client();
    expect(await first.enroll(token)).toMatch(/^c_[0-9a-f]{16}$/);
    const err = await failure(client().enroll(token));
    expect(err.status).toBe(status.UNAUTHENTICATED);
    expect(err.code).toBe('exhausted_join_token');
  });

  it('enrollment – an expired token is refused (UNAUTHENTICATED)', async () => {
    const token = await admin.joinToken(5, 1);
    skew += 2000;
    try {
      const err = await failure(client().enroll(token));
      expect(err.status).toBe(status.UNAUTHENTICATED);
      expect(err.code).toBe('expired_join_token');
    } finally {
      skew -= 2000;
    }
  });

  it('enrollment – the same public key cannot enroll twice (ALREADY_EXISTS)', async () => {
    const token = await admin.joinToken(2);
    const c = client();
    await c.enroll(token);
    const err = await failure(c.enroll(token));
    expect(err.status).toBe(status.ALREADY_EXISTS);
  });

  it('signed calls – a revoked client is refused with PERMISSION_DENIED', async () => {
    const c = client();
    await c.enroll(await admin.joinToken(1));
    await c.heartbeat();
    await admin.call('RevokeClient', { clientId: c.id, reason: 'lost laptop' });
    const err = await failure(c.heartbeat());
    expect(err.status).toBe(status.PERMISSION_DENIED);
    expect(err.code).toBe('revoked_client');
    const listed = await admin.call('ListClients', { includeRevoked: true });
    expect(listed.clients.find((x) => x.clientId === c.id)?.revoked).toBe(true);
  });

  it('signed calls – a replayed nonce, a bad signature, a skewed clock and an unknown client are UNAUTHENTICATED', async () => {
    const c = client();
    await c.enroll(await admin.joinToken(1));
    const body = proto.bodies.heartbeat.encode({ state: 'CLIENT_STATE_IDLE' });
    const nonce = newNonce();
    await callUnary(c.fleet, 'Heartbeat', { auth: c.auth('fleet', 'Heartbeat', body, c.id, nonce), body });

    const replay = await failure(callUnary(c.fleet, 'Heartbeat', { auth: c.auth('fleet', 'Heartbeat', body, c.id, nonce), body }));
    const stranger = client();
    const forged = await failure(callUnary(c.fleet, 'Heartbeat', { auth: stranger.auth('fleet', 'Heartbeat', body, c.id), body }));
    const tampered = proto.bodies.heartbeat.encode({ state: 'CLIENT_STATE_TRAINING' });
    const swapped = await failure(callUnary(c.fleet, 'Heartbeat', { auth: c.auth('fleet', 'Heartbeat', body), body: tampered }));
    const wrongMethod = await failure(callUnary(c.fleet, 'Heartbeat', { auth: c.auth('fleet', 'PullTask', body), body }));
    const drifted = new TestClient(coordinator.address, () => clock() + 10 * 60_000);
    open.push(drifted);
    const skewed = await failure(drifted.enroll(await admin.joinToken(1)));
    stranger.id = 'c_00000000deadbeef'; // never enrolled
    const unknown = await failure(stranger.heartbeat());

    expect([replay, forged, swapped, wrongMethod, skewed, unknown].map((e) => e.status)).toEqual(Array(6).fill(status.UNAUTHENTICATED));
    expect([replay.code, forged.code, swapped.code, wrongMethod.code, skewed.code, unknown.code]).toEqual([
      'replayed_nonce',
      'bad_signature',
      'bad_signature',
      'bad_signature',
      'clock_skew',
      'unknown_client',
    ]);
  });

  it('admin – calls without the bearer token or with a wrong one are UNAUTHENTICATED', async () => {
    const none = await failure(callUnary(admin.client, 'Status', {}, { metadata: new Metadata() }));
    const wrong = await failure(callUnary(admin.client, 'Status', {}, { metadata: adminMetadata('lethe_admin_wrong') }));
    expect(none.status).toBe(status.UNAUTHENTICATED);
    expect(wrong.status).toBe(status.UNAUTHENTICATED);
    const ok = await admin.call('Status', {});
    expect(ok.clientsEnrolled).toBeGreaterThan(0);
  });
});
