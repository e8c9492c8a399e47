/** Unlearning requests as client tasks over real gRPC: hand-out, requeue at the deadline, a failure report. */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import type { UnlearningRequest } from '../../src/wire/admin-messages.js';
import { DEFAULT_UNLEARNING_ADAPTER } from '../../src/unlearning/index.js';
import { callUnary } from '../../src/wire/services.js';
import { Admin, adminMetadata, proto, runJson, tempDir, TestClient, writeTestModel } from './helpers.js';

describe('unlearning tasks', () => {
  let dir: ReturnType<typeof tempDir>;
  let coordinator: Coordinator;
  let admin: Admin;
  let client: TestClient;

  async function setup(deadlineS: number): Promise<{ runId: string; requestId: string }> {
    // local steps = the unlearning adapter's, so the unlearning task's deadline is exactly the round deadline
    const local = { steps: DEFAULT_UNLEARNING_ADAPTER.steps };
    const { runId } = await admin.createRun(runJson(await writeTestModel(dir.path), { min_clients: 5, round_deadline_s: deadlineS, local }));
    const r = await callUnary(admin.client, 'SubmitUnlearning', { runId, clientIds: [client.id], forget: { group: 'spam-2' }, reason: 'test' }, { metadata: adminMetadata(coordinator.adminToken) });
    return { runId, requestId: r.requestId };
  }
  const get = (requestId: string): Promise<UnlearningRequest> => callUnary(admin.client, 'GetUnlearning', { requestId }, { metadata: adminMetadata(coordinator.adminToken) });

  beforeEach(async () => {
    dir = tempDir('lethe-unl-task-');
    coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: () => undefined });
    await coordinator.start();
    admin = new Admin(coordinator.address, coordinator.adminToken);
    client = new TestClient(coordinator.address);
    await client.enroll(await admin.joinToken());
  });
  afterEach(async () => {
    client.close();
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  it('task – the named client pulls its request as an unlearn task (round 0), may fetch the global adapter, and a second pull gets the same assignment', async () => {
    // Arrange
    const { runId, requestId } = await setup(60);

    // Act
    const task = (await client.pullTask())!;
    const global = await client.fetchAdapter(task);
    const again = (await client.pullTask())!;

    // Assert
    expect(task).toMatchObject({ runId, round: 0, mode: 'TRAINING_MODE_UNLEARN', taskId: `${runId}/0/${client.id}` });
    expect(task.unlearning).toMatchObject({ requestId, index: 1, targetPolicy: 'input_hash_label', forget: { group: 'spam-2' }, priorAdaptersSha256: [] });
    expect(global.size).toBeGreaterThan(0);
    expect(again.unlearning!.requestId).toBe(requestId);
    expect((await get(requestId)).state).toBe('UNLEARNING_STATE_RUNNING');
  });

  it('task – an assignment past its deadline (a crashed client) is queued again, the heartbeat cancels it, and the next pull hands it out again', async () => {
    // Arrange
    const { requestId } = await setup(1);
    const task = (await client.pullTask())!;

    // Act
    await new Promise((r) => setTimeout(r, 1_300));
    const beat = await client.heartbeat(task.taskId);
    const queued = await get(requestId);
    const retry = (await client.pullTask())!;

    // Assert
    expect(beat.cancelTask).toBe(true);
    expect(queued.state).toBe('UNLEARNING_STATE_PENDING');
    expect(retry.unlearning!.requestId).toBe(requestId);
    expect((await get(requestId)).state).toBe('UNLEARNING_STATE_RUNNING');
  });

  it('task – a client reporting an empty selection fails the request with that reason, and nothing is active', async () => {
    // Arrange
    const { runId, requestId } = await setup(60);
    const task = (await client.pullTask())!;
    const body = proto.bodies.reportFailure.encode({ runId, round: 0, taskId: task.taskId, reason: 'FAILURE_REASON_DATA', message: 'the forget selector matches no local example (empty selection)' });

    // Act
    await callUnary(client.fleet, 'ReportFailure', { auth: client.auth('fleet', 'ReportFailure', body), body });
    const failed = await get(requestId);

    // Assert
    expect(failed.state).toBe('UNLEARNING_STATE_FAILED');
    expect(failed.message).toMatch(/empty selection/);
    expect(failed.adapterSha256.length).toBe(0);
    expect(await client.pullTask()).toBeNull();
  });
});
