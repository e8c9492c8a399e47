/**
 * Forward-only clients in federated rounds (src/coordinator/forward-only.ts), over real gRPC on 127.0.0.1:
 *   - a seed upload, replayed by the coordinator from the wire bytes, gives the adapter the client trained, and the
 *     pool the next task names replays to it from the seeded init;
 *   - uploads that do not fit their task are refused with INVALID_ARGUMENT and a specific code;
 *   - the ESSA generation does not depend on the order in which uploads arrived (pure).
 * The mixed round with real client nodes of every mode is in mixed-round.test.ts.
 */
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { computeUpdate, loraOfTask } from '../../src/client/train-task.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { denseRound, ESSA_POPULATION, essaMemberSeeds, type StoredUpdate } from '../../src/coordinator/forward-only.js';
import { runLayout } from '../../src/coordinator/layout.js';
import { parseRunConfig } from '../../src/coordinator/run-config.js';
import type { RunContext } from '../../src/coordinator/runs.js';
import { makeExample } from '../../src/data/dataset.js';
import { encodeExamples } from '../../src/data/encode.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { GPT2 } from '../../src/model/gpt2.js';
import { initAdapter } from '../../src/model/lora.js';
import { tokenizerFor } from '../../src/model/tokenizer.js';
import type { HostTensor, TensorMap } from '../../src/tensors/host.js';
import { essaInit } from '../../src/train/essa.js';
import { trainMezo } from '../../src/train/mezo.js';
import { normals } from '../../src/train/perturb.js';
import { candidateSeeds, replay } from '../../src/train/seed-pool.js';
import { RpcError } from '../../src/wire/errors.js';
import type { Task } from '../../src/wire/messages.js';
import { Admin, encodeUnchecked, makeDelta, runJson, tempDir, TEST_CAPABILITIES, TEST_MODEL, TestClient, waitFor, writeTestModel } from './helpers.js';

const K = 4096;
const PAIRS = 3;
const texts = ['cheap pills buy now', 'meeting at noon tomorrow', 'win money fast click', 'lunch with the team', 'free offer limited', 'notes from the call'];
const data = encodeExamples(
  texts.map((t, i) => makeExample(t, i % 2 === 0 ? 1 : 0)),
  tokenizerFor(TEST_MODEL),
  16,
);
const noNoise = (n: number): Float64Array => new Float64Array(n);

function maxAbsDiff(a: TensorMap, b: TensorMap): number {
  let m = 0;
  for (const [name, t] of a) {
    const u = b.get(name)!.data;
    for (let i = 0; i < t.data.length; i++) m = Math.max(m, Math.abs(t.data[i]! - u[i]!));
  }
  return m;
}

function one(name: string, shape: number[], fill: (i: number) => number): Map<string, HostTensor> {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = fill(i);
  return new Map([[name, { shape, data }]]);
}

describe('forward-only rounds', () => {
  const dir = tempDir('lethe-forward-only-');
  const log: string[] = [];
  let coordinator: Coordinator;
  let admin: Admin;
  let seedsClient: TestClient;
  let essaClient: TestClient;
  let baseModel: string;
  let model: GPT2;

  beforeAll(async () => {
    await initBackend('cpu');
    baseModel = await writeTestModel(dir.path);
    const ck = await loadCheckpoint(baseModel);
    model = new GPT2(ck.config, ck.weights);
    coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: (l) => log.push(l), waitForClientsMs: 50, backend: 'cpu' });
    await coordinator.start();
    admin = new Admin(coordinator.address, coordinator.adminToken);
    const token = await admin.joinToken(10);
    seedsClient = new TestClient(coordinator.address);
    essaClient = new TestClient(coordinator.address);
    await seedsClient.enroll(token, { ...TEST_CAPABILITIES, modes: ['TRAINING_MODE_MEZO_SEEDS'] });
    await essaClient.enroll(token, { ...TEST_CAPABILITIES, modes: ['TRAINING_MODE_ESSA'] });
    for (const c of [seedsClient, essaClient]) await c.heartbeat();
  });

  afterAll(async () => {
    model.dispose();
    for (const c of [seedsClient, essaClient]) c.close();
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  function seedsRun(rounds: number): Promise<{ runId: string }> {
    const local = { mode: 'mezo', mezo_upload: 'seeds', seed_pool_k: K, steps: 6, batch_size: 4, lr: 0.05, essa_pairs: PAIRS, essa_eval_examples: 4 };
    return admin.createRun(runJson(baseModel, { rounds, min_clients: 1, round_deadline_s: 60, local }));
  }

  async function completed(runId: string): Promise<void> {
    await waitFor(async () => ((await admin.call('GetRun', { runId })).state === 'RUN_STATE_COMPLETED' ? true : undefined), 10_000, 'run completed');
  }

  async function refused(act: () => Promise<unknown>, code: string): Promise<RpcError> {
    const err = await act().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, `the upload should be refused with ${code}`).toBeInstanceOf(RpcError);
    expect((err as RpcError).status).toBe(status.INVALID_ARGUMENT);
    expect((err as RpcError).code).toBe(code);
    return err as RpcError;
  }

  it('forward-only – uploads that do not fit the task are refused with INVALID_ARGUMENT and a specific code', async () => {
    // Arrange: a seed task and an ESSA task in one round
    const { runId } = await seedsRun(1);
    const seedTask = (await seedsClient.pullTask(5000))!;
    const essaTask = (await essaClient.pullTask(5000))!;
    const global = await seedsClient.fetchAdapter(seedTask);
    const seeds = { kind: 'UPDATE_KIND_SEED_SCALARS' };
    const fitness = { kind: 'UPDATE_KIND_ESSA_FITNESS' };

    // Act + Assert: the tasks say what to send
    expect(seedTask.mode).toBe('TRAINING_MODE_MEZO_SEEDS');
    expect(seedTask.uploadTensors).toEqual(['seed_scalars']);
    expect(seedTask.mezo).toMatchObject({ seedPoolSize: K, poolSeed: expect.stringContaining(runId) });
    expect(essaTask.mode).toBe('TRAINING_MODE_ESSA');
    expect(essaTask.essa!.memberSeeds).toHaveLength(PAIRS);
    expect(essaTask.essa!.basisSha256).toHaveLength(32);

    // Act + Assert: each misfit has its code, and nothing is stored
    await refused(() => seedsClient.push(seedTask, makeDelta({ ...seedTask, uploadTensors: [...global.keys()].filter((n) => !n.includes('lora_A')) }, global, () => 0.01)), 'wrong_update_kind');
    const wrongK = await refused(() => seedsClient.push(seedTask, one('seed_scalars', [K + 1], () => 0.1), seeds), 'wrong_pool_size');
    expect(wrongK.details).toMatch(/seed_scalars \[4096\]/);
    await refused(() => seedsClient.push(seedTask, one('seed_scalars', [2 * K], () => 0.1), seeds), 'wrong_pool_size');
    await refused(() => seedsClient.push(seedTask, encodeUnchecked(one('seed_scalars', [K], (i) => (i === 5 ? Number.NaN : 0.1))), seeds), 'non_finite');
    await refused(() => essaClient.push(essaTask, one('fitness', [PAIRS + 1, 2], () => -0.5), fitness), 'unassigned_member');
    await refused(() => essaClient.push(essaTask, encodeUnchecked(one('fitness', [PAIRS, 2], (i) => (i === 1 ? Number.POSITIVE_INFINITY : -0.5))), fitness), 'non_finite');
    const rounds = (await admin.call('ListRounds', { runId })).rounds;
    expect(rounds[0]!.accepted).toBe(0);

    // Cleanup: both give up, the round fails and the run ends
    await seedsClient.reportFailure(seedTask);
    await essaClient.reportFailure(essaTask);
    await completed(runId);
  });

  it('forward-only – a seed upload replayed from the wire is the client\'s own adapter (≤ 1e-6), and the pool replays to it', async () => {
    // Arrange
    const { runId } = await seedsRun(2);
    const task = (await seedsClient.pullTask(5000))!;
    await essaClient.reportFailure((await essaClient.pullTask(5000))!);
    const global0 = await seedsClient.fetchAdapter(task);
    const training = task.training!;
    const pool = { runSeed: task.mezo!.poolSeed, k: K };
    const local = await trainMezo(model, loraOfTask(task), global0, data, {
      steps: training.steps,
      batchSize: training.batchSize,
      lr: training.learningRate,
      trainable: 'ffa',
      seed: training.seed,
      eps: task.mezo!.eps,
      seedPool: pool,
    });

    // Act: the client code path computes the upload; the coordinator aggregates it
    const out = await computeUpdate(task, { model, global: global0, data, noise: noNoise });
    const ack = await seedsClient.push(task, out.tensors, { kind: 'UPDATE_KIND_SEED_SCALARS', numExamples: out.numExamples });
    const next = (await seedsClient.pullTask(10_000)) as Task;
    const global1 = await seedsClient.fetchAdapter(next);
    const poolT = (await seedsClient.fetchPayload(runId, next.mezo!.poolScalarsSha256)).get('seed_pool')!;

    // Assert: the upload is one 16 KiB tensor; the new global adapter is the client's trained one. Not bitwise: the
    // client's θ takes float32 steps θ ← θ − lr·g·z one at a time, the coordinator adds −lr·Σ g·z summed in float64
    // and then global + (replay − global) in float32, so they differ by a few float32 ulps of θ.
    expect(ack.result).toBe('RESULT_ACCEPTED');
    expect(ack.storedBytes).toBe(4 * K);
    expect(task.mezo!.poolScalarsSha256).toHaveLength(0); // no pool before round 1
    expect(next.round).toBe(2);
    expect(maxAbsDiff(global1, global0)).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(global1, local.adapter)).toBeLessThanOrEqual(1e-6);
    // The pool after one client with weight 1 is its scalars; replayed from the seeded init it is the adapter.
    expect(poolT.data).toEqual(out.tensors.get('seed_scalars')!.data);
    const init = initAdapter(TEST_MODEL, loraOfTask(next));
    const caughtUp = replay(init, 'ffa', poolT.data, candidateSeeds(next.mezo!.poolSeed, K), training.learningRate);
    expect(maxAbsDiff(caughtUp, global1)).toBeLessThanOrEqual(1e-6);

    // Cleanup
    await seedsClient.reportFailure(next);
    await essaClient.reportFailure((await essaClient.pullTask(5000))!);
    await completed(runId);
  });
});

describe('forward-only – ESSA generation (pure)', () => {
  it('denseRound – the ESSA step does not depend on the order uploads arrived, and stands for all ESSA uploads as one update', () => {
    // Arrange: a run context on the test model with a non-zero B, and three clients' fitness rows
    const config = parseRunConfig({ labels: ['ham', 'spam'], lora: { r: 4, alpha: 8 }, local: { essa_pairs: PAIRS } });
    const ctx: RunContext = { id: 'run_pure', config, layout: runLayout(TEST_MODEL, config), plan: undefined };
    const global = initAdapter(TEST_MODEL, ctx.layout.lora);
    for (const [name, t] of global) if (name.endsWith('lora_B.weight')) t.data.set(normals(name.length, t.data.length).map((x) => 0.05 * x));
    const essa = essaInit(global);
    const updates: StoredUpdate[] = ['c_a', 'c_b', 'c_c'].map((clientId, k) => ({
      clientId,
      numExamples: 10 * (k + 1),
      kind: 'UPDATE_KIND_ESSA_FITNESS',
      tensors: one('fitness', [PAIRS, 2], (i) => -0.7 + 0.01 * Math.sin(7 * k + i)),
      metrics: { loss: 0.7 },
    }));

    // Act
    const forward = denseRound(ctx, 3, global, updates, essa, 'examples');
    const backward = denseRound(ctx, 3, global, [...updates].reverse(), essa, 'examples');

    // Assert
    expect(forward.results).toHaveLength(1);
    const [a] = forward.results;
    const [b] = backward.results;
    expect(a!.clientId).toBe(ESSA_POPULATION);
    expect(a!.numExamples).toBe(60);
    expect([...a!.delta.keys()]).toEqual([...ctx.layout.upload.keys()]);
    for (const [name, t] of a!.delta) expect(t.data).toEqual(b!.delta.get(name)!.data);
    expect(forward.essa!.s).toEqual(backward.essa!.s);
    expect(forward.essa!.t).toBe(1);
    expect(a!.delta.get('score.weight')!.data.every((v) => v === 0)).toBe(true); // ESSA never moves the head
    expect(forward.poolIncrement).toBeUndefined();
    expect(essaMemberSeeds(ctx, 3, 'c_a')).not.toEqual(essaMemberSeeds(ctx, 3, 'c_b'));
  });
});
