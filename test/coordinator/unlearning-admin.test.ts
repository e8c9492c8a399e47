/** AdminService unlearning calls over real gRPC: what a submission must name, and that a rejected one stores nothing. */
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import type { SubmitUnlearningRequest } from '../../src/wire/admin-messages.js';
import type { MessageInput } from '../../src/wire/messages.js';
import { callUnary } from '../../src/wire/services.js';
import { Admin, adminMetadata, proto, runJson, tempDir, TestClient, writeTestModel } from './helpers.js';

describe('unlearning requests (admin)', () => {
  const dir = tempDir('lethe-unl-admin-');
  let coordinator: Coordinator;
  let admin: Admin;
  let runId: string;
  let clientId: string;
  let revokedId: string;

  const submit = (r: MessageInput<SubmitUnlearningRequest>) => callUnary(admin.client, 'SubmitUnlearning', r, { metadata: adminMetadata(coordinator.adminToken) });
  const list = () => callUnary(admin.client, 'ListUnlearning', {}, { metadata: adminMetadata(coordinator.adminToken) });
  const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { status?: number; message: string }) => [e.status, e.message] as const);

  beforeAll(async () => {
    coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: () => undefined });
    await coordinator.start();
    admin = new Admin(coordinator.address, coordinator.adminToken);
    ({ runId } = await admin.createRun(runJson(await writeTestModel(dir.path), { min_clients: 5 })));
    const token = await admin.joinToken();
    const [a, b] = [new TestClient(coordinator.address), new TestClient(coordinator.address)];
    clientId = await a.enroll(token);
    revokedId = await b.enroll(token);
    a.close();
    b.close();
    await admin.call('RevokeClient', { clientId: revokedId, reason: 'left' });
  });
  afterAll(async () => {
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  it('submit – a valid request is queued with index 1, the default target policy, and shows in Get and List', async () => {
    // Act
    const r = await submit({ runId, clientIds: [clientId], forget: { label: 'spam' }, reason: 'user asked' });
    const got = await callUnary(admin.client, 'GetUnlearning', { requestId: r.requestId }, { metadata: adminMetadata(coordinator.adminToken) });

    // Assert
    expect(r).toMatchObject({ runId, index: 1, state: 'UNLEARNING_STATE_PENDING', targetPolicy: 'input_hash_label', clientIds: [clientId], reason: 'user asked' });
    expect(got.requestId).toBe(r.requestId);
    expect((await list()).requests.map((q) => q.requestId)).toContain(r.requestId);
  });

  it('submit – rejects unknown run, unknown client, revoked client, empty selector, bad regex, bad policy and a duplicate, storing nothing', async () => {
    // Arrange
    const before = (await list()).requests.length;

    // Act
    const results = {
      unknownRun: await code(submit({ runId: 'run_nope', clientIds: [clientId], forget: { label: 'x' } })),
      unknownClient: await code(submit({ runId, clientIds: ['cl_nope'], forget: { label: 'x' } })),
      revoked: await code(submit({ runId, clientIds: [revokedId], forget: { label: 'x' } })),
      noClient: await code(submit({ runId, clientIds: [], forget: { label: 'x' } })),
      empty: await code(submit({ runId, clientIds: [clientId], forget: {} })),
      badRegex: await code(submit({ runId, clientIds: [clientId], forget: { match: '(' } })),
      badPolicy: await code(submit({ runId, clientIds: [clientId], forget: { label: 'x' }, targetPolicy: 'refusal' })),
      duplicate: await code(submit({ runId, clientIds: [clientId], forget: { label: 'spam' } })),
    };

    // Assert
    expect(results.unknownRun).toEqual([status.NOT_FOUND, expect.stringContaining('run_nope')]);
    expect(results.unknownClient).toEqual([status.NOT_FOUND, expect.stringContaining('cl_nope')]);
    expect(results.revoked).toEqual([status.FAILED_PRECONDITION, expect.stringContaining('revoked')]);
    expect(results.noClient).toEqual([status.INVALID_ARGUMENT, expect.stringContaining('client_ids')]);
    expect(results.empty).toEqual([status.INVALID_ARGUMENT, expect.stringContaining('selects nothing')]);
    expect(results.badRegex).toEqual([status.INVALID_ARGUMENT, expect.stringContaining('regular expression')]);
    expect(results.badPolicy).toEqual([status.INVALID_ARGUMENT, expect.stringContaining('target_policy')]);
    expect(results.duplicate).toEqual([status.ALREADY_EXISTS, expect.stringContaining('already request')]);
    expect((await list()).requests.length).toBe(before);
  });

  it('get – an unknown request id is NOT_FOUND', async () => {
    expect(await code(callUnary(admin.client, 'GetUnlearning', { requestId: 'unl_nope' }, { metadata: adminMetadata(coordinator.adminToken) }))).toEqual([
      status.NOT_FOUND,
      expect.stringContaining('unl_nope'),
    ]);
  });
});

describe('unlearning requests (submitted by the client itself)', () => {
  const dir = tempDir('lethe-unl-own-');
  let coordinator: Coordinator;
  let admin: Admin;
  let runId: string;
  let own: TestClient;
  let revoked: TestClient;

  const submitAs = (c: TestClient, body: Parameters<typeof proto.bodies.ownUnlearning.encode>[0]) => {
    const bytes = proto.bodies.ownUnlearning.encode(body);
    return callUnary(c.fleet, 'SubmitUnlearning', { auth: c.auth('fleet', 'SubmitUnlearning', bytes), body: bytes });
  };
  const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { status?: number; code?: string; message: string }) => [e.status, e.code, e.message] as const);

  beforeAll(async () => {
    coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: () => undefined });
    await coordinator.start();
    admin = new Admin(coordinator.address, coordinator.adminToken);
    ({ runId } = await admin.createRun(runJson(await writeTestModel(dir.path), { min_clients: 5 })));
    const token = await admin.joinToken();
    [own, revoked] = [new TestClient(coordinator.address), new TestClient(coordinator.address)];
    await own.enroll(token);
    await revoked.enroll(token);
    await admin.call('RevokeClient', { clientId: revoked.id, reason: 'left' });
  });
  afterAll(async () => {
    own.close();
    revoked.close();
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  it('fleet submit – a signed request is queued for the signing client alone and shows in the admin list', async () => {
    // Act
    const r = await submitAs(own, { runId, forget: { group: 'hard-ham-1' }, reason: 'my mails' });
    const listed = await callUnary(admin.client, 'ListUnlearning', { runId }, { metadata: adminMetadata(coordinator.adminToken) });

    // Assert
    expect(r).toMatchObject({ runId, state: 'UNLEARNING_STATE_PENDING', clientIds: [own.id], reason: 'my mails', targetPolicy: 'input_hash_label' });
    expect(listed.requests.map((q) => q.requestId)).toContain(r.requestId);
  });

  it('fleet submit – a revoked client is PERMISSION_DENIED (revoked_client) and nothing is stored', async () => {
    // Arrange
    const before = (await callUnary(admin.client, 'ListUnlearning', {}, { metadata: adminMetadata(coordinator.adminToken) })).requests.length;

    // Act
    const result = await code(submitAs(revoked, { runId, forget: { label: 'spam' }, reason: 'forget me' }));

    // Assert
    expect(result).toEqual([status.PERMISSION_DENIED, 'revoked_client', expect.stringContaining('revoked')]);
    expect((await callUnary(admin.client, 'ListUnlearning', {}, { metadata: adminMetadata(coordinator.adminToken) })).requests.length).toBe(before);
  });

  it('fleet submit – the admin checks apply: unknown run, empty selector, duplicate; a bad signature is refused', async () => {
    // Arrange
    await submitAs(own, { runId, forget: { label: 'ham' }, reason: 'first' });
    const bytes = proto.bodies.ownUnlearning.encode({ runId, forget: { label: 'spam' } });
    const forged = { auth: revoked.auth('fleet', 'SubmitUnlearning', bytes, own.id), body: bytes }; // signed by another key

    // Act
    const results = {
      unknownRun: await code(submitAs(own, { runId: 'run_nope', forget: { label: 'x' } })),
      empty: await code(submitAs(own, { runId, forget: {} })),
      duplicate: await code(submitAs(own, { runId, forget: { label: 'ham' }, reason: 'again' })),
      forged: await code(callUnary(own.fleet, 'SubmitUnlearning', forged)),
    };

    // Assert
    expect(results.unknownRun).toEqual([status.NOT_FOUND, expect.any(String), expect.stringContaining('run_nope')]);
    expect(results.empty).toEqual([status.INVALID_ARGUMENT, expect.any(String), expect.stringContaining('selects nothing')]);
    expect(results.duplicate).toEqual([status.ALREADY_EXISTS, expect.any(String), expect.stringContaining('already request')]);
    expect(results.forged).toEqual([status.UNAUTHENTICATED, 'bad_signature', expect.any(String)]);
  });
});
