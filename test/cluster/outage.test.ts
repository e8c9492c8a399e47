/**
 * A NATS outage mid-run, with our own nats-server child: the coordinator process logs that NATS is unreachable and
 * answers UNAVAILABLE saying so; when the server is back it serves again, nothing acknowledged is lost, and the run
 * completes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { status as Status } from '@grpc/grpc-js';
import { readAdminToken } from '../../src/auth/admin-token.js';
import type { Task } from '../../src/wire/messages.js';
import { Admin, makeDelta, runJson, tempDir, TestClient, waitFor, writeTestModel } from '../coordinator/helpers.js';
import { eventually, freePort, startCoordinator, startNatsServer, stopProcess, type CoordinatorProcess } from './helpers.js';

describe('cluster NATS outage', () => {
  const dir = tempDir('lethe-outage-');
  const natsDir = mkdtempSync(join(tmpdir(), 'lethe-outage-nats-'));
  let server: ChildProcess | undefined;
  let coordinator: CoordinatorProcess | undefined;
  const closers: (() => void)[] = [];

  afterAll(async () => {
    for (const close of closers) close();
    await coordinator?.kill('SIGKILL');
    if (server) await stopProcess(server, 'SIGKILL');
    rmSync(natsDir, { recursive: true, force: true });
    dir.remove();
  });

  it('cluster – NATS killed mid-run: calls fail UNAVAILABLE naming NATS, the log says why, and after a restart the run completes with nothing acknowledged lost', async () => {
    // Arrange: our own nats-server, one coordinator process on it, two clients, round 1 open with one upload in
    const port = await freePort();
    const servers = `nats://127.0.0.1:${port}`;
    server = await startNatsServer(port, natsDir);
    const baseModel = await writeTestModel(dir.path);
    const dataDir = join(dir.path, 'data');
    const started = await startCoordinator('C', { dataDir, servers, prefix: 'outage' });
    coordinator = started.process;
    const admin = new Admin(started.address, await readAdminToken(dataDir));
    const clients = [0, 1].map(() => new TestClient(started.address));
    closers.push(() => [admin, ...clients].forEach((c) => c.close()));
    const join_ = await admin.joinToken(2);
    for (const c of clients) await c.enroll(join_);
    for (const c of clients) await c.heartbeat();
    const { runId } = await admin.createRun(runJson(baseModel, { rounds: 2, min_clients: 2, round_deadline_s: 60 }));
    const tasks = (await Promise.all(clients.map((c) => c.pullTask(10_000)))) as Task[];
    const global0 = await clients[0]!.fetchAdapter(tasks[0]!);
    const deltas = tasks.map((t, k) => makeDelta(t, global0, () => 0.01 * (k + 1)));
    expect((await clients[0]!.push(tasks[0]!, deltas[0]!, { numExamples: 4 })).result).toBe('RESULT_ACCEPTED');

    // Act: kill -9 the NATS server
    await stopProcess(server, 'SIGKILL');

    // Assert: the coordinator says why, and calls fail UNAVAILABLE naming NATS
    await coordinator.waitForLog(/NATS unreachable \(.*\): answering UNAVAILABLE until it is back/, 10_000);
    const refused = await eventually(async () => {
      const err: Error & { status?: number } = await clients[1]!.heartbeat().then(
        () => new Error('a heartbeat succeeded while NATS was down'),
        (e: unknown) => e as Error & { status?: number },
      );
      if (err.status !== Status.UNAVAILABLE) throw err;
      return err;
    }, 10_000);
    expect(refused.message).toMatch(/NATS unavailable/);

    // Act: NATS back on the same port and storage
    server = await startNatsServer(port, natsDir);
    await coordinator.waitForLog(/NATS reachable again/, 15_000);

    // Assert: the upload acknowledged before the outage is still counted; the round and the run finish
    const res = await eventually(() => clients[1]!.push(tasks[1]!, deltas[1]!, { numExamples: 6 }), 15_000);
    expect(res.result).toBe('RESULT_ACCEPTED');
    const next = (await Promise.all(clients.map((c) => c.pullTask(15_000)))) as Task[];
    expect(next.map((t) => t?.round)).toEqual([2, 2]);
    const rounds = (await admin.call('ListRounds', { runId })).rounds;
    expect(rounds.find((r) => r.round === 1)).toMatchObject({ state: 'ROUND_STATE_COMPLETED', accepted: 2, sampled: 2 });
    await Promise.all(clients.map((c, k) => c.push(next[k]!, makeDelta(next[k]!, global0, () => 0.001))));
    await waitFor(async () => ((await admin.call('GetRun', { runId })).state === 'RUN_STATE_COMPLETED' ? true : undefined), 15_000, 'run completed');
  });
});
