/**
 * Bad input against a live coordinator: each kind of malformed or wrong request gets its specific gRPC status and
 * exactly one log line, and the coordinator keeps serving.
 */
import { join } from 'node:path';
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { RpcError } from '../../src/wire/errors.js';
import { fromStatus } from '../../src/wire/status.js';
import type { Task } from '../../src/wire/messages.js';
import { Admin, encodeUnchecked, makeDelta, runJson, tempDir, TestClient, writeTestModel } from './helpers.js';

describe('coordinator bad input', () => {
  const dir = tempDir('lethe-bad-');
  const log: string[] = [];
  let coordinator: Coordinator;
  let admin: Admin;
  let clients: TestClient[];
  let tasks: Task[];
  let global: Map<string, HostTensor>;
  let raw: Client;

  beforeAll(async () => {
    const baseModel = await writeTestModel(dir.path);
    coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: (l) => log.push(l), waitForClientsMs: 50 });
    await coordinator.start();
    admin = new Admin(coordinator.address, coordinator.adminToken);
    const token = await admin.joinToken(10);
    clients = [0, 1, 2].map(() => new TestClient(coordinator.address));
    for (const c of clients) {
      await c.enroll(token);
      await c.heartbeat();
    }
    await admin.createRun(runJson(baseModel, { rounds: 1, min_clients: 3, round_deadline_s: 120 }));
    tasks = (await Promise.all(clients.map((c) => c.pullTask(5000)))) as Task[];
    global = await clients[0]!.fetchAdapter(tasks[0]!);
    raw = new Client(coordinator.address, credentials.createInsecure());
  });

  afterAll(async () => {
    raw.close();
    for (const c of clients) c.close();
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  /** Runs `act`, expects it to fail with `code` (and `lethe` code when given) and exactly one new log line. */
  async function refused(act: () => Promise<unknown>, code: status, lethe?: string): Promise<RpcError> {
    const before = log.length;
    const err = await act().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'the call should fail').toBeDefined();
    const e = err as RpcError;
    expect(e).toBeInstanceOf(RpcError);
    expect(e.status).toBe(code);
    if (lethe) expect(e.code).toBe(lethe);
    if (code !== status.RESOURCE_EXHAUSTED) expect(log.length - before).toBe(1); // grpc-js refuses oversized messages before any handler
    return e;
  }

  function rawUnary(path: string, bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, new Metadata(), {}, (err) => (err ? reject(fromStatus(err)) : resolve())),
    );
  }

  it('bad input – a malformed protobuf is INVALID_ARGUMENT, not INTERNAL', async () => {
    await refused(() => rawUnary('/lethe.v1.FleetService/Heartbeat', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f])), status.INVALID_ARGUMENT, 'bad_body');
    await refused(() => rawUnary('/lethe.v1.EnrollmentService/Enroll', Buffer.from([0x12, 0x05, 0x01])), status.INVALID_ARGUMENT, 'bad_body');
  });

  it('bad input – an oversized message is RESOURCE_EXHAUSTED', async () => {
    await refused(() => rawUnary('/lethe.v1.FleetService/Heartbeat', Buffer.alloc(5 << 20, 1)), status.RESOURCE_EXHAUSTED);
  });

  it('bad input – wrong shapes, wrong names, another dtype and NaN are INVALID_ARGUMENT with a specific code', async () => {
    const [task, c] = [tasks[0]!, clients[0]!];
    const good = makeDelta(task, global, () => 0.01);
    const [first, firstT] = [...good][0]!;
    const reshaped = new Map(good).set(first, { shape: [firstT.shape[1]!, firstT.shape[0]!], data: firstT.data });
    const renamed = new Map([...good].map(([n, t], i) => [i === 0 ? `${n}.x` : n, t] as const));
    const withNaN = makeDelta(task, global, (t, i) => (t === 1 && i === 3 ? Number.NaN : 0.01));
    await refused(() => c.push(task, reshaped), status.INVALID_ARGUMENT, 'shape_mismatch');
    await refused(() => c.push(task, renamed), status.INVALID_ARGUMENT, 'name_mismatch');
    await refused(() => c.push(task, encodeUnchecked(good, 'f16')), status.INVALID_ARGUMENT, 'dtype_unsupported');
    await refused(() => c.push(task, encodeUnchecked(withNaN)), status.INVALID_ARGUMENT, 'non_finite');
  });

  it('bad input – a corrupted chunk, a wrong kind and a bad example count are INVALID_ARGUMENT', async () => {
    const [task, c] = [tasks[1]!, clients[1]!];
    const encoded = encodeUnchecked(makeDelta(task, global, () => 0.02));
    const corrupt = { ...encoded, chunks: encoded.chunks.map((ch, i) => (i === 1 ? { ...ch, data: Buffer.alloc(ch.data.length, 7) } : ch)) };
    await refused(() => c.push(task, corrupt), status.INVALID_ARGUMENT, 'chunk_hash_mismatch');
    await refused(() => c.push(task, encoded, { kind: 'UPDATE_KIND_SEED_SCALARS' }), status.INVALID_ARGUMENT);
    await refused(() => c.push(task, encoded, { numExamples: 0 }), status.INVALID_ARGUMENT);
  });

  it('bad input – a wrong round, an unknown run and an unsampled client are refused by state', async () => {
    const [task, c] = [tasks[2]!, clients[2]!];
    const delta = makeDelta(task, global, () => 0.03);
    await refused(() => c.push({ ...task, round: task.round + 5, taskId: `${task.runId}/${task.round + 5}/${c.id}` }, delta), status.FAILED_PRECONDITION, 'wrong_round');
    await refused(() => c.push({ ...task, runId: 'run_missing' }, delta), status.NOT_FOUND);
    const late = new TestClient(coordinator.address);
    try {
      await late.enroll(await admin.joinToken(1));
      await refused(() => late.push({ ...task, taskId: `${task.runId}/${task.round}/${late.id}` }, delta), status.FAILED_PRECONDITION, 'not_sampled');
    } finally {
      late.close();
    }
  });

  it('bad input – after all of it the round still accepts valid updates', async () => {
    const acks = await Promise.all(clients.map((c, k) => c.push(tasks[k]!, makeDelta(tasks[k]!, global, () => 0.001 * (k + 1)))));
    expect(acks.map((a) => a.result)).toEqual(['RESULT_ACCEPTED', 'RESULT_ACCEPTED', 'RESULT_ACCEPTED']);
    expect(log.filter((l) => l.startsWith('rejected') && l.includes('INTERNAL'))).toEqual([]);
  });
});
