/**
 * Two coordinator PROCESSES on one NATS JetStream (the shared server, a fresh bucket prefix), clients spread over
 * both, central DP on: SIGKILL of the one leading the run mid-round. The other takes the run's lease over within
 * 10 s, the run completes, every acknowledged update is aggregated exactly once, and the privacy ledger holds exactly
 * one entry per round released.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readAdminToken } from '../../src/auth/admin-token.js';
import { openNatsStore } from '../../src/store/nats/store.js';
import type { HostTensor } from '../../src/tensors/host.js';
import type { Task } from '../../src/wire/messages.js';
import { Admin, makeDelta, runJson, tempDir, TestClient, waitFor, writeTestModel } from '../coordinator/helpers.js';
import { destroyPrefix, freshPrefix, NATS_URL, startCoordinator, type CoordinatorProcess } from './helpers.js';

describe('cluster fail-over', () => {
  const prefix = freshPrefix('failover');
  const dir = tempDir('lethe-failover-');
  const processes: CoordinatorProcess[] = [];
  const closers: (() => void)[] = [];

  afterAll(async () => {
    for (const close of closers) close();
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
    await destroyPrefix(NATS_URL, prefix);
    dir.remove();
  });

  it('cluster – SIGKILL of the leading coordinator mid-round: the other takes over within 10 s, the run completes, each accepted update is aggregated once, one ledger entry per round', async ({ annotate }) => {
    // Arrange: coordinators A and B sharing one prefix; four clients, two enrolled through each
    const baseModel = await writeTestModel(dir.path);
    const dataDirs = [join(dir.path, 'a'), join(dir.path, 'b')];
    const coordinators = await Promise.all(['A', 'B'].map((name, i) => startCoordinator(name, { dataDir: dataDirs[i]!, servers: NATS_URL, prefix })));
    processes.push(...coordinators.map((c) => c.process));
    const tokens = await Promise.all(dataDirs.map((d) => readAdminToken(d)));
    expect(tokens[1]).toBe(tokens[0]); // one admin token for the deployment
    const admin = new Admin(coordinators[0]!.address, tokens[0]!);
    closers.push(() => admin.close());
    const join_ = await admin.joinToken(4);
    const homes = [0, 0, 1, 1];
    let clients = homes.map((h) => new TestClient(coordinators[h]!.address));
    closers.push(() => clients.forEach((c) => c.close()));
    for (const c of clients) await c.enroll(join_);
    for (const c of clients) await c.heartbeat();
    const beating = setInterval(() => clients.forEach((c) => void c.heartbeat().catch(() => undefined)), 2000);
    closers.push(() => clearInterval(beating));

    const privacy = { mode: 'central', epsilon: 200, delta: 1e-5, clip: 1, noise_multiplier: 0.8 };
    const { runId } = await admin.createRun(runJson(baseModel, { rounds: 2, min_clients: 2, round_deadline_s: 60, sample_rate: 1, privacy }));
    const leads = new RegExp(`run ${runId}: (\\S+) leads it`);
    const [first] = await Promise.race(coordinators.map((c, i) => c.process.waitForLog(leads).then((m) => [i, m] as const)));
    const leader = coordinators[first]!;
    const survivor = coordinators[1 - first]!;

    const acked = new Map<number, Map<string, { sha: string; examples: number }>>([[1, new Map()], [2, new Map()]]);
    async function push(c: TestClient, task: Task, delta: Map<string, HostTensor>, examples: number): Promise<string> {
      const res = await c.push(task, delta, { numExamples: examples });
      if (res.result === 'RESULT_ACCEPTED') acked.get(task.round)!.set(c.id, { sha: res.sha256.toString('hex'), examples });
      return res.result;
    }

    const tasks = (await Promise.all(clients.map((c) => c.pullTask(10_000)))) as Task[];
    expect(tasks.map((t) => t?.round)).toEqual([1, 1, 1, 1]);
    const global0 = await clients[0]!.fetchAdapter(tasks[0]!);
    const deltas = tasks.map((t, k) => makeDelta(t, global0, (ti, i) => 0.001 * (k + 1) + ti * 1e-5 + i * 1e-7));
    // One upload through each coordinator before the kill
    expect(await push(clients[0]!, tasks[0]!, deltas[0]!, 5)).toBe('RESULT_ACCEPTED');
    expect(await push(clients[2]!, tasks[2]!, deltas[2]!, 7)).toBe('RESULT_ACCEPTED');

    // Act: kill -9 the leader mid-round; its clients move to the survivor (as a load balancer would send them)
    const killedAt = performance.now();
    await leader.process.kill('SIGKILL');
    const moved = clients.map((c, k) => (homes[k] === first ? new TestClient(survivor.address, Date.now, c.keys, c.id) : c));
    const old = clients;
    clients = moved;
    old.filter((c) => !moved.includes(c)).forEach((c) => c.close());

    // Assert: the upload acknowledged by the dead coordinator, retried through the survivor, is a duplicate
    const retried = first === 0 ? 0 : 2;
    expect((await clients[retried]!.push(tasks[retried]!, deltas[retried]!, { numExamples: retried === 0 ? 5 : 7 })).result).toBe('RESULT_DUPLICATE');
    await survivor.process.waitForLog(new RegExp(`run ${runId}: \\S+ leads it \\(took over from`), 10_000);
    const takeoverMs = performance.now() - killedAt;
    expect(takeoverMs).toBeLessThan(10_000);
    await annotate(`fail-over took ${Math.round(takeoverMs)} ms from SIGKILL to the survivor's takeover log line`);

    // Act: the rest of round 1 and all of round 2 through the survivor
    expect(await push(clients[1]!, tasks[1]!, deltas[1]!, 11)).toBe('RESULT_ACCEPTED');
    expect(await push(clients[3]!, tasks[3]!, deltas[3]!, 13)).toBe('RESULT_ACCEPTED');
    const next = (await Promise.all(clients.map((c) => c.pullTask(15_000)))) as Task[];
    expect(next.map((t) => t?.round)).toEqual([2, 2, 2, 2]);
    const global1 = await clients[0]!.fetchAdapter(next[0]!);
    for (const [k, c] of clients.entries()) expect(await push(c, next[k]!, makeDelta(next[k]!, global1, () => 0.002 * (k + 1)), 3 + k)).toBe('RESULT_ACCEPTED');
    const survivorAdmin = new Admin(survivor.address, tokens[0]!);
    closers.push(() => survivorAdmin.close());
    await waitFor(async () => ((await survivorAdmin.call('GetRun', { runId })).state === 'RUN_STATE_COMPLETED' ? true : undefined), 20_000, 'run completed');

    // Assert: what was aggregated is exactly what was acknowledged; one ledger entry per round
    const store = await openNatsStore({ servers: NATS_URL, bucketPrefix: prefix });
    try {
      for (const round of [1, 2]) {
        const want = acked.get(round)!;
        const updates = await store.updates.list(runId, round);
        expect(new Map(updates.map((u) => [u.clientId, u.sha256]))).toEqual(new Map([...want].map(([id, a]) => [id, a.sha])));
        const record = (await store.rounds.get(runId, round))!;
        expect(record).toMatchObject({ state: 'closed', updatesReceived: want.size });
        expect(record.metrics).toMatchObject({ accepted: want.size, examples: [...want.values()].reduce((s, a) => s + a.examples, 0) });
      }
      const ledger = await store.ledger.list(runId);
      expect(ledger.map((e) => [e.seq, e.kind])).toEqual([
        [0, 'aggregate'],
        [1, 'aggregate'],
      ]);
    } finally {
      store.close();
    }
  });
});
