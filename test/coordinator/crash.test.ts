/**
 * kill -9 of a real coordinator process mid-round: after a restart on the same data directory nothing that was
 * acknowledged is lost (enrollments, accepted updates, round records), the open round finishes, and an open round
 * whose deadline passed while the coordinator was down is aggregated from what was stored.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAdminToken } from '../../src/auth/admin-token.js';
import type { HostTensor } from '../../src/tensors/host.js';
import type { Task } from '../../src/wire/messages.js';
import { Admin, makeDelta, runJson, tempDir, TestClient, waitFor, writeTestModel } from './helpers.js';
import { BUILT, kill9, startProcess, type Running } from './process.js';

describe('coordinator crash safety', () => {
  const dir = tempDir('lethe-crash-');
  const dataDir = join(dir.path, 'data');
  let baseModel: string;
  let running: Running | undefined;
  const identities: { keys: TestClient['keys']; id: string }[] = [];

  beforeAll(async () => {
    if (!existsSync(BUILT)) throw new Error('dist/coordinator is missing: run `npx tsc -p .` (npm test builds first)');
    baseModel = await writeTestModel(dir.path);
  });

  afterAll(async () => {
    if (running) await kill9(running);
    dir.remove();
  });

  /** Clients for the current process, reusing the enrolled identities, each heartbeating so it is live. */
  async function connect(r: Running): Promise<{ admin: Admin; clients: TestClient[]; close(): void }> {
    const admin = new Admin(r.address, await readAdminToken(dataDir));
    const clients = identities.map((i) => new TestClient(r.address, Date.now, i.keys, i.id));
    for (const c of clients) await c.heartbeat();
    return { admin, clients, close: () => [admin, ...clients].forEach((x) => x.close()) };
  }

  it('crash – kill -9 mid-round loses no enrollment, accepted update or round; the round and the run finish after restart', async () => {
    // Arrange: three enrolled clients, a run, two acknowledged uploads in round 1
    running = await startProcess(dataDir);
    {
      const admin = new Admin(running.address, await readAdminToken(dataDir));
      const token = await admin.joinToken(3);
      for (let k = 0; k < 3; k++) {
        const c = new TestClient(running.address);
        identities.push({ keys: c.keys, id: await c.enroll(token) });
        c.close();
      }
      admin.close();
    }
    let s = await connect(running);
    const { runId } = await s.admin.createRun(runJson(baseModel, { rounds: 2, min_clients: 3, round_deadline_s: 60 }));
    const tasks = (await Promise.all(s.clients.map((c) => c.pullTask(5000)))) as Task[];
    const global0: Map<string, HostTensor> = await s.clients[0]!.fetchAdapter(tasks[0]!);
    const deltas = tasks.map((t, k) => makeDelta(t, global0, (ti, i) => 0.01 * (k + 1) + ti * 1e-4 + i * 1e-6));
    const acks = [await s.clients[0]!.push(tasks[0]!, deltas[0]!, { numExamples: 5 }), await s.clients[1]!.push(tasks[1]!, deltas[1]!, { numExamples: 15 })];
    expect(acks.map((a) => a.result)).toEqual(['RESULT_ACCEPTED', 'RESULT_ACCEPTED']);
    s.close();

    // Act: kill -9, restart on the same data directory
    await kill9(running);
    running = await startProcess(dataDir);
    s = await connect(running);

    // Assert: enrollments, the open round and both accepted updates survived
    const listed = await s.admin.call('ListClients', {});
    expect(listed.clients.map((c) => c.clientId).sort()).toEqual(identities.map((i) => i.id).sort());
    const open = (await s.admin.call('ListRounds', { runId })).rounds;
    expect(open).toHaveLength(1);
    expect(open[0]).toMatchObject({ round: 1, state: 'ROUND_STATE_OPEN', accepted: 2, sampled: 3 });
    expect((await s.clients[0]!.push(tasks[0]!, deltas[0]!, { numExamples: 5 })).result).toBe('RESULT_DUPLICATE');

    // Act: the third client, which still has its task, finishes the round; round 2 runs normally
    const again = (await s.clients[2]!.pullTask(5000))!;
    expect(again.taskId).toBe(tasks[2]!.taskId);
    expect((await s.clients[2]!.push(again, deltas[2]!, { numExamples: 30 })).result).toBe('RESULT_ACCEPTED');
    const next = (await Promise.all(s.clients.map((c) => c.pullTask(5000)))) as Task[];
    expect(next.map((t) => t.round)).toEqual([2, 2, 2]);
    const global1 = await s.clients[0]!.fetchAdapter(next[0]!);
    const weights = [5 / 50, 15 / 50, 30 / 50];
    const name = tasks[0]!.uploadTensors[0]!;
    const expected = global0.get(name)!.data[3]! + deltas.reduce((sum, d, k) => sum + weights[k]! * d.get(name)!.data[3]!, 0);
    expect(global1.get(name)!.data[3]).toBeCloseTo(expected, 6);
    await Promise.all(s.clients.map((c, k) => c.push(next[k]!, makeDelta(next[k]!, global1, () => 0.001))));
    await waitFor(async () => ((await s.admin.call('GetRun', { runId })).state === 'RUN_STATE_COMPLETED' ? true : undefined), 10_000, 'run completed');
    s.close();
  });

  it('crash – a round whose deadline passed while the coordinator was down is aggregated from the stored updates at restart', async () => {
    // Arrange: round 1 of a new run with a 2 s deadline; two of three clients upload, then kill -9
    let s = await connect(running!);
    const { runId } = await s.admin.createRun(runJson(baseModel, { rounds: 1, min_clients: 2, round_deadline_s: 2 }));
    const tasks = (await Promise.all(s.clients.map((c) => c.pullTask(5000)))) as Task[];
    const global0 = await s.clients[0]!.fetchAdapter(tasks[0]!);
    await s.clients[0]!.push(tasks[0]!, makeDelta(tasks[0]!, global0, () => 0.01));
    await s.clients[1]!.push(tasks[1]!, makeDelta(tasks[1]!, global0, () => 0.03));
    s.close();
    await kill9(running!);
    await new Promise((r) => setTimeout(r, 2200));

    // Act: restart; no client does anything
    running = await startProcess(dataDir);
    const admin = new Admin(running.address, await readAdminToken(dataDir));
    try {
      // Assert
      const round = await waitFor(async () => (await admin.call('ListRounds', { runId })).rounds.find((r) => r.state === 'ROUND_STATE_COMPLETED'), 10_000, 'round closed');
      expect(round).toMatchObject({ round: 1, accepted: 2, sampled: 3 });
      expect((await admin.call('GetRun', { runId })).state).toBe('RUN_STATE_COMPLETED');
    } finally {
      admin.close();
    }
  });
});
