import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { TaskError } from '../../src/client/errors.js';
import { computeUpdate, loraOfTask } from '../../src/client/train-task.js';
import { encodeExamples } from '../../src/data/encode.js';
import { makeExample } from '../../src/data/dataset.js';
import { GPT2 } from '../../src/model/gpt2.js';
import { initAdapter } from '../../src/model/lora.js';
import { tokenizerFor } from '../../src/model/tokenizer.js';
import { globalNorm } from '../../src/tensors/host.js';
import { essaInit } from '../../src/train/essa.js';
import { essaBasisTensors } from '../../src/train/essa-basis.js';
import { trainMezo } from '../../src/train/mezo.js';
import { accumulate, candidateSeeds } from '../../src/train/seed-pool.js';
import type { Task } from '../../src/wire/messages.js';
import { TEST_MODEL } from './helpers.js';

const texts = ['cheap pills buy now', 'meeting at noon tomorrow', 'win money fast click', 'lunch with the team', 'free offer limited', 'notes from the call'];
const data = encodeExamples(
  texts.map((t, i) => makeExample(t, i % 2 === 0 ? 1 : 0)),
  tokenizerFor(TEST_MODEL),
  16,
);

function task(overrides: Partial<Task> = {}): Task {
  const base: Task = {
    taskId: 'run_1/1/c_1',
    runId: 'run_1',
    round: 1,
    deadlineMs: Date.now() + 60_000,
    mode: 'TRAINING_MODE_BACKPROP',
    adapterSha256: Buffer.alloc(32),
    baseModel: 'test',
    dataset: 'builtin:spam',
    labels: ['ham', 'spam'],
    seqLen: 16,
    lora: { rank: 2, alpha: 4, targetModules: ['attn.c_attn', 'attn.c_proj'], initSeed: 's', aggregation: 'AGGREGATION_MODE_FFA' },
    training: { steps: 3, batchSize: 4, learningRate: 0.05, weightDecay: 0, seed: 7 },
    mezo: { eps: 1e-2, seedPoolSize: 0, poolSeed: '', poolScalarsSha256: Buffer.alloc(0) },
    essa: null,
    privacy: null,
    unlearning: null,
    uploadTensors: [],
  };
  const t = { ...base, ...overrides };
  const adapter = initAdapter(TEST_MODEL, loraOfTask(t));
  return { ...t, uploadTensors: overrides.uploadTensors ?? [...adapter.keys()].filter((n) => !n.endsWith('lora_A.weight')) };
}

describe('client task computation', () => {
  let model: GPT2;
  const noise = (n: number): Float64Array => new Float64Array(n);

  beforeAll(async () => {
    await initBackend('cpu');
    model = GPT2.init(TEST_MODEL, 'train-task-test');
  });
  afterAll(() => model.dispose());

  it('train task – backprop under FFA uploads exactly the task\'s tensors (lora_B and the head) with their shapes', async () => {
    // Arrange
    const t = task();
    const global = initAdapter(TEST_MODEL, loraOfTask(t));
    await computeUpdate(t, { model, global, data, noise }); // the model caches derived weights on first use
    const before = tf.memory().numTensors;

    // Act
    const out = await computeUpdate(t, { model, global, data, noise });

    // Assert
    expect(out.kind).toBe('UPDATE_KIND_DENSE');
    expect([...out.tensors.keys()]).toEqual(t.uploadTensors);
    for (const [name, u] of out.tensors) expect(u.shape).toEqual(global.get(name)!.shape);
    expect(globalNorm(out.tensors)).toBeGreaterThan(0);
    expect(out.numExamples).toBe(texts.length);
    expect(out.metrics.loss).toBeGreaterThan(0);
    expect(out.metrics.steps).toBe(3);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('train task – central DP instructions clip the whole update to C and report the clip indicator', async () => {
    const t = task({ privacy: { clipNorm: 1e-3, localNoiseMultiplier: 0, reportClipIndicator: true, sampleDp: null } });
    const global = initAdapter(TEST_MODEL, loraOfTask(t));
    const out = await computeUpdate(t, { model, global, data, noise });
    expect(globalNorm(out.tensors)).toBeLessThanOrEqual(1e-3);
    expect(out.withinClipNorm).toBe(false);
    expect(out.metrics.clipped).toBe(1);
    expect(out.metrics.update_norm).toBeGreaterThan(1e-3);
  });

  it('train task – dense MeZO uploads the same layout as backprop', async () => {
    const t = task({ mode: 'TRAINING_MODE_MEZO_DENSE' });
    const global = initAdapter(TEST_MODEL, loraOfTask(t));
    const out = await computeUpdate(t, { model, global, data, noise });
    expect(out.kind).toBe('UPDATE_KIND_DENSE');
    expect([...out.tensors.keys()]).toEqual(t.uploadTensors);
  });

  it('train task – ESSA reports one fitness row (F+, F−) per member seed', async () => {
    // Arrange: ESSA searches the singular values of B·A, so start from a non-zero B
    const essa = { sigma: 0.02, memberSeeds: [11, 12, 13], topFraction: 1, fitness: 'neg_loss', evalExamples: 4, basisSha256: Buffer.alloc(32) };
    const t = task({ mode: 'TRAINING_MODE_ESSA', essa });
    const global = initAdapter(TEST_MODEL, loraOfTask(t));
    for (const [name, g] of global) if (name.endsWith('lora_B.weight')) g.data.fill(0.01);
    const essaBasis = essaBasisTensors(essaInit(global));

    // Act
    const out = await computeUpdate(t, { model, global, data, noise, essaBasis });

    // Assert
    const fitness = out.tensors.get('fitness')!;
    expect(out.kind).toBe('UPDATE_KIND_ESSA_FITNESS');
    expect(fitness.shape).toEqual([3, 2]);
    expect([...fitness.data].every((v) => Number.isFinite(v) && v < 0)).toBe(true); // fitness = −loss
  });

  it('train task – MeZO seeds uploads the K accumulated scalars of its trace as one tensor', async () => {
    // Arrange
    const t = task({ mode: 'TRAINING_MODE_MEZO_SEEDS', mezo: { eps: 1e-2, seedPoolSize: 64, poolSeed: 'run/pool', poolScalarsSha256: Buffer.alloc(0) } });
    const global = initAdapter(TEST_MODEL, loraOfTask(t));
    const training = t.training!;
    const common = { steps: training.steps, batchSize: training.batchSize, lr: training.learningRate, trainable: 'ffa' as const, seed: training.seed };

    // Act
    const out = await computeUpdate(t, { model, global, data, noise });
    const local = await trainMezo(model, loraOfTask(t), global, data, { ...common, eps: 1e-2, seedPool: { runSeed: 'run/pool', k: 64 } });

    // Assert: the scalars are exactly accumulate(trace) of the same run, and only the steps' seeds are non-zero
    const scalars = out.tensors.get('seed_scalars')!;
    expect(out.kind).toBe('UPDATE_KIND_SEED_SCALARS');
    expect(scalars.shape).toEqual([64]);
    expect(scalars.data).toEqual(accumulate(local.trace, candidateSeeds('run/pool', 64)));
    expect([...scalars.data].filter((v) => v !== 0).length).toBeLessThanOrEqual(training.steps);
    expect(out.metrics.loss).toBeGreaterThan(0);
  });

  it('train task – a mode this client does not run is refused with TaskError', async () => {
    const t = task({ mode: 'TRAINING_MODE_UNLEARN' });
    const err = await computeUpdate(t, { model, global: initAdapter(TEST_MODEL, loraOfTask(t)), data, noise }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).code).toBe('unsupported_mode');
  });

  it('train task – an adapter that does not fit the task\'s LoRA config is refused before training', async () => {
    const t = task();
    const wrong = initAdapter(TEST_MODEL, { ...loraOfTask(t), r: 3 });
    await expect(computeUpdate(t, { model, global: wrong, data, noise })).rejects.toThrow(/does not fit/);
  });
});
