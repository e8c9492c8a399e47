/**
 * Federated rounds on a live coordinator with three real gRPC test clients that upload prepared updates.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { RpcError } from '../../src/wire/errors.js';
import type { Task } from '../../src/wire/messages.js';
import { Admin, makeDelta, runJson, tempDir, TestClient, waitFor, writeTestModel } from './helpers.js';

describe('coordinator rounds', () => {
  const dir = tempDir('lethe-rounds-');
  let skew = 0;
  const clock = (): number => Date.now() + skew;
  const log: string[] = [];
  let coordinator: Coordinator;
  let admin: Admin;
  let clients: TestClient[];
  let baseModel: string;

  beforeAll(async () => {
    baseModel = await writeTestModel(dir.path);
    coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, clock, log: (l) => log.push(l), waitForClientsMs: 50, backend: 'cpu' });
    await coordinator.start();
    admin = new Admin(coordinator.address, coordinator.adminToken);
    const token = await admin.joinToken(10);
    clients = [0, 1, 2].map(() => new TestClient(coordinator.address, clock));
    for (const c of clients) {
      await c.enroll(token);
      await c.heartbeat();
    }
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  async function rounds(runId: string) {
    return (await admin.call('ListRounds', { runId })).rounds;
  }

  it('rounds – the aggregate is the example-weighted average of the uploads, a retry is a duplicate, a silent client is dropped at the deadline', async () => {
    // Arrange
    const { runId } = await admin.createRun(runJson(baseModel, { rounds: 2, min_clients: 2, round_deadline_s: 1.5 }));
    const tasks = (await Promise.all(clients.map((c) => c.pullTask(5000)))) as Task[];
    expect(tasks.every((t) => t?.round === 1 && t.runId === runId)).toBe(true);
    expect(tasks[0]!.uploadTensors.every((n) => !n.includes('lora_A'))).toBe(true); // ffa: A does not travel
    const global0 = await clients[0]!.fetchAdapter(tasks[0]!);
    const examples = [10, 20, 30];
    const deltas = clients.map((_, k) => makeDelta(tasks[k]!, global0, (t, i) => (k + 1) * 0.01 + t * 1e-3 - i * 1e-5));

    // Act: all three upload; a retry and a different payload follow
    const acks = await Promise.all(clients.map((c, k) => c.push(tasks[k]!, deltas[k]!, { numExamples: examples[k], metrics: { loss: k } })));
    const retry = await clients[0]!.push(tasks[0]!, deltas[0]!, { numExamples: 10 });
    const other = makeDelta(tasks[0]!, global0, () => 0.5);
    const conflict = await clients[0]!.push(tasks[0]!, other).catch((e: unknown) => e);

    // Assert: acknowledgements
    expect(acks.map((a) => a.result)).toEqual(['RESULT_ACCEPTED', 'RESULT_ACCEPTED', 'RESULT_ACCEPTED']);
    expect(retry.result).toBe('RESULT_DUPLICATE');
    expect(retry.sha256.equals(acks[0]!.sha256)).toBe(true);
    expect(conflict).toBeInstanceOf(RpcError);
    expect((conflict as RpcError).status).toBe(status.ALREADY_EXISTS);

    // Assert: round 2's starting adapter is global0 + Σ n_k δ_k / Σ n_k on the travelling tensors, A unchanged
    const next = (await Promise.all(clients.map((c) => c.pullTask(5000)))) as Task[];
    expect(next.every((t) => t?.round === 2)).toBe(true);
    const global1 = await clients[1]!.fetchAdapter(next[1]!);
    const total = examples.reduce((a, b) => a + b, 0);
    for (const [name, g0] of global0) {
      const got = global1.get(name)!.data;
      const moved = tasks[0]!.uploadTensors.includes(name);
      for (let i = 0; i < got.length; i += 7) {
        const expected = moved ? g0.data[i]! + deltas.reduce((s, d, k) => s + (examples[k]! / total) * d.get(name)!.data[i]!, 0) : g0.data[i]!;
        expect(got[i]).toBeCloseTo(expected, 6);
      }
    }
    const r1 = (await rounds(runId)).find((r) => r.round === 1)!;
    expect(r1).toMatchObject({ state: 'ROUND_STATE_COMPLETED', sampled: 3, accepted: 3 });
    expect(r1.metrics.mean_local_loss).toBeCloseTo(1, 9);
    expect(r1.metrics.bytes_up).toBeGreaterThan(0);
    expect(r1.adapterSha256.equals(next[0]!.adapterSha256)).toBe(true);

    // Act: round 2, client 2 never replies
    const started = Date.now();
    await clients[0]!.push(next[0]!, makeDelta(next[0]!, global1, () => 0.001));
    await clients[1]!.push(next[1]!, makeDelta(next[1]!, global1, () => 0.002));
    const r2 = await waitFor(async () => (await rounds(runId)).find((r) => r.round === 2 && r.state === 'ROUND_STATE_COMPLETED'), 10_000, 'round 2');
    const late = await clients[2]!.push(next[2]!, makeDelta(next[2]!, global1, () => 0.003)).catch((e: unknown) => e);

    // Assert: closed at the deadline with the two that replied; the latecomer is told the round closed
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(r2).toMatchObject({ sampled: 3, accepted: 2, failed: 1 });
    expect(late).toBeInstanceOf(RpcError);
    expect((late as RpcError).status).toBe(status.FAILED_PRECONDITION);
    expect((late as RpcError).details).toMatch(/closed/);
    const run = await admin.call('GetRun', { runId });
    expect(run.state).toBe('RUN_STATE_COMPLETED');
    expect(run.adapterSha256.equals(r2.adapterSha256)).toBe(true);
  });

  it('rounds – a client that reports failure does not hold the round up; the new adapter is evaluated on the eval split', async () => {
    const evalData = join(dir.path, 'eval.jsonl');
    const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: i % 2 ? `win money ${i}` : `meeting notes ${i}`, label: i % 2 ? 'spam' : 'ham' }));
    writeFileSync(evalData, `${lines.join('\n')}\n`);
    const { runId } = await admin.createRun(runJson(baseModel, { rounds: 1, min_clients: 2, round_deadline_s: 60, eval_data: evalData }));
    const tasks = (await Promise.all(clients.map((c) => c.pullTask(5000)))) as Task[];
    const global0 = await clients[0]!.fetchAdapter(tasks[0]!);
    await clients[2]!.reportFailure(tasks[2]!, 'out of memory');
    await clients[0]!.push(tasks[0]!, makeDelta(tasks[0]!, global0, () => 0.01));
    await clients[1]!.push(tasks[1]!, makeDelta(tasks[1]!, global0, () => 0.02));
    const r1 = await waitFor(async () => (await rounds(runId)).find((r) => r.state === 'ROUND_STATE_COMPLETED' && r.metrics.eval_accuracy !== undefined), 10_000, 'round 1');
    expect(r1.accepted).toBe(2);
    expect(r1.metrics.eval_examples).toBe(8); // the 20 % test split of 40
    expect(r1.metrics.eval_accuracy).toBeGreaterThanOrEqual(0);
    expect(r1.metrics.eval_loss).toBeGreaterThan(0);
  });

  it('rounds – revoking a sampled client abandons its task, so the round closes without waiting for it', async () => {
    const { runId } = await admin.createRun(runJson(baseModel, { rounds: 1, min_clients: 2, round_deadline_s: 60 }));
    const tasks = (await Promise.all(clients.map((c) => c.pullTask(5000)))) as Task[];
    const global0 = await clients[0]!.fetchAdapter(tasks[0]!);
    await clients[0]!.push(tasks[0]!, makeDelta(tasks[0]!, global0, () => 0.01));
    await clients[1]!.push(tasks[1]!, makeDelta(tasks[1]!, global0, () => 0.02));
    await admin.call('RevokeClient', { clientId: clients[2]!.id, reason: 'compromised' });
    const r1 = await waitFor(async () => (await rounds(runId)).find((r) => r.state === 'ROUND_STATE_COMPLETED'), 5000, 'round 1');
    expect(r1).toMatchObject({ accepted: 2, failed: 1 });
  });

  it('rounds – an upload after the deadline is refused as late (FAILED_PRECONDITION) before the round is aggregated', async () => {
    const { runId } = await admin.createRun(runJson(baseModel, { rounds: 1, min_clients: 2, round_deadline_s: 30 }));
    const task = (await clients[0]!.pullTask(5000))!;
    const global0: Map<string, HostTensor> = await clients[0]!.fetchAdapter(task);
    skew += 31_000; // past the deadline on the coordinator's clock; its deadline timer has not fired yet
    const err = await clients[0]!.push(task, makeDelta(task, global0, () => 0.01)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).status).toBe(status.FAILED_PRECONDITION);
    expect((err as RpcError).code).toBe('late');
    expect((err as RpcError).details).toMatch(/closed at its deadline/);
    expect(log.some((l) => l.includes('rejected /lethe.v1.FleetService/PushUpdate') && l.includes('(late)'))).toBe(true);
    expect(runId).toMatch(/^run_/);
  });
});
