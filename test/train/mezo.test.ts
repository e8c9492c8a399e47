import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import type { GPT2 } from '../../src/model/gpt2.js';
import { toTf } from '../../src/model/lora.js';
import type { HostTensor, TensorMap } from '../../src/tensors/host.js';
import { gatherBatch, type HostBatch } from '../../src/train/batches.js';
import { gaussianNoise, type NoiseSource } from '../../src/privacy/gaussian.js';
import { evaluate } from '../../src/train/evaluate.js';
import { MezoLearner, trainMezo } from '../../src/train/mezo.js';
import { forEachNoise, normals, sizesOf } from '../../src/train/perturb.js';
import { trainableNames } from '../../src/train/types.js';
import { freshAdapter, syntheticTask, TEST_LORA, tinyModel } from './zo-fixtures.js';

let model: GPT2;
const data = syntheticTask(64, 'mezo-task');

/** An adapter with non-zero B, so that A has a gradient too. */
function warmAdapter(): Map<string, HostTensor> {
  const a = freshAdapter();
  for (const [name, t] of a) {
    if (name.endsWith('lora_B.weight')) t.data.set(normals(name.length, t.data.length).map((x) => 0.05 * x));
  }
  return a;
}

/** ∇L(θ)·z(seed) by backprop over the trainable tensors. */
function directionalDerivative(adapter: TensorMap, names: string[], batch: HostBatch, seed: number): number {
  const grads = tf.tidy(() => {
    const fixed = toTf(new Map([...adapter].filter(([n]) => !names.includes(n))));
    const xs = names.map((n) => tf.tensor(adapter.get(n)!.data.slice(), [...adapter.get(n)!.shape]));
    const ids = tf.tensor2d(batch.ids, [batch.size, batch.seqLen], 'int32');
    const mask = tf.tensor2d(batch.mask, [batch.size, batch.seqLen]);
    const onehot = tf.oneHot(tf.tensor1d(batch.labels, 'int32'), 2).toFloat();
    const f = (...ts: tf.Tensor[]): tf.Scalar => {
      const tensors = new Map([...fixed, ...names.map((n, i) => [n, ts[i]!] as const)]);
      const logits = model.classify(ids, mask, { config: TEST_LORA, tensors });
      return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits), onehot), 1)));
    };
    return tf.grads(f)(xs).map((g) => g.dataSync().slice());
  });
  let dd = 0;
  forEachNoise(sizesOf(adapter), names, seed, (name, z) => {
    const g = grads[names.indexOf(name)]!;
    for (let i = 0; i < z.length; i++) dd += g[i]! * z[i]!;
  });
  return dd;
}

beforeAll(async () => {
  await initBackend('wasm'); // ~20× faster than cpu here; z and the update are computed in JS either way
  model = tinyModel();
});
afterAll(() => model.dispose());

describe('mezo – projected gradient', () => {
  it('g – approaches the true directional derivative ∇L·z as ε → 0', () => {
    // Arrange
    const start = warmAdapter();
    const names = trainableNames(start.keys(), 'lora');
    const batch = gatherBatch(data, Array.from({ length: 16 }, (_, i) => i));
    const seed = 12345;
    const exact = directionalDerivative(start, names, batch, seed);
    const learner = new MezoLearner(model, TEST_LORA, start, 'lora');
    // Act: lr 0 measures g without moving θ
    const errors = [1e-1, 1e-2, 1e-3].map((eps) => Math.abs(learner.step(batch, seed, eps, 0).g - exact) / Math.abs(exact));
    learner.dispose();
    // Assert: a wrong sign gives error ≈ 2, a wrong factor of 2 gives ≥ 0.5
    expect(Math.abs(exact)).toBeGreaterThan(1e-2);
    expect(errors[2]).toBeLessThan(1e-3); // measured 3.5e-5 (float32 forward, central difference)
    expect(errors[1]).toBeLessThan(errors[0]!);
    expect(errors[2]).toBeLessThan(errors[1]!);
  });

  it('step – with lr 0 leaves the adapter unchanged; with lr > 0 moves it along −g·z(s)', () => {
    const start = freshAdapter();
    const learner = new MezoLearner(model, TEST_LORA, start, 'ffa');
    const batch = gatherBatch(data, [0, 1, 2, 3]);
    const { g } = learner.step(batch, 7, 1e-3, 0);
    expect(learner.adapter()).toEqual(start);
    learner.step(batch, 7, 1e-3, 0.5);
    const after = learner.adapter();
    learner.dispose();
    const name = 'h.0.attn.c_attn.lora_B.weight';
    const z = new Map<string, Float32Array>();
    forEachNoise(sizesOf(start), trainableNames(start.keys(), 'ffa'), 7, (n, v) => z.set(n, v.slice()));
    expect(after.get(name)!.data[3]).toBeCloseTo(start.get(name)!.data[3]! - 0.5 * g * z.get(name)![3]!, 6);
    expect(after.get('h.0.attn.c_attn.lora_A.weight')).toEqual(start.get('h.0.attn.c_attn.lora_A.weight')); // frozen under ffa
  });
});

describe('mezo – training', () => {
  it('trainMezo – lowers the training loss over 100 steps and records one (seed, g) per step', async () => {
    // Arrange
    const start = freshAdapter();
    const before = evaluate(model, TEST_LORA, start, data);
    // Act
    const r = await trainMezo(model, TEST_LORA, start, data, { steps: 100, batchSize: 16, lr: 3e-3, eps: 1e-3, trainable: 'ffa', seed: 1 });
    // Assert
    const after = evaluate(model, TEST_LORA, r.adapter, data);
    expect(after.loss).toBeLessThan(before.loss - 0.05);
    expect(after.accuracy).toBeGreaterThan(before.accuracy);
    expect(r.trace).toHaveLength(100);
    expect(new Set(r.trace.map((t) => t.seed)).size).toBe(100);
    expect(r.trainable).toEqual(trainableNames(start.keys(), 'ffa'));
    expect(r.numExamples).toBe(64);
    expect(r.adapter.get('h.1.attn.c_proj.lora_A.weight')).toEqual(start.get('h.1.attn.c_proj.lora_A.weight'));
  });

  it('trainMezo – is reproducible from its seed', async () => {
    const opts = { steps: 5, batchSize: 8, lr: 1e-3, eps: 1e-3, trainable: 'ffa', seed: 9 } as const;
    const a = await trainMezo(model, TEST_LORA, freshAdapter(), data, opts);
    const b = await trainMezo(model, TEST_LORA, freshAdapter(), data, opts);
    expect(b.trace).toEqual(a.trace);
    expect(b.adapter).toEqual(a.adapter);
  });

  it('trainMezo – keeps tf.memory().numTensors constant over 100 steps', async () => {
    const before = tf.memory().numTensors;
    let peak = before;
    await trainMezo(model, TEST_LORA, freshAdapter(), data, {
      steps: 100,
      batchSize: 4,
      lr: 1e-3,
      eps: 1e-3,
      trainable: 'lora',
      seed: 3,
      onStep: () => {
        peak = Math.max(peak, tf.memory().numTensors);
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(peak - before).toBeLessThanOrEqual(freshAdapter().size); // only the uploaded frozen tensors live between steps
  });

  it('trainMezo – rejects a non-positive eps with a bad_option error', async () => {
    await expect(trainMezo(model, TEST_LORA, freshAdapter(), data, { steps: 1, batchSize: 4, lr: 1e-3, eps: 0, trainable: 'ffa', seed: 1 })).rejects.toThrow(
      expect.objectContaining({ name: 'TrainError', code: 'bad_option' }),
    );
  });
});

describe('mezo – DPZero', () => {
  it('dp – clips each per-example scalar to [−C, C] and releases N(0, (2σC/B)²) with B = q·N', async () => {
    // Arrange: a noise source that records the std asked for and adds nothing
    const stds: number[] = [];
    const noise: NoiseSource = (n, std) => {
      stds.push(std);
      return new Float64Array(n);
    };
    const sizes: number[] = [];
    const clip = 1e-4;
    // Act
    const r = await trainMezo(
      model,
      TEST_LORA,
      freshAdapter(),
      data,
      { steps: 8, batchSize: 16, lr: 1e-3, eps: 1e-3, trainable: 'ffa', seed: 4, onStep: (i) => sizes.push(i.batchSize) },
      { clip, noiseMultiplier: 1.5, sampleRate: 0.25, noise },
    );
    // Assert
    const expected = 0.25 * data.n;
    expect(stds).toEqual(Array(8).fill((2 * 1.5 * clip) / expected));
    r.trace.forEach((t, i) => expect(Math.abs(t.g)).toBeLessThanOrEqual((clip * sizes[i]!) / expected + 1e-12));
    expect(new Set(sizes).size).toBeGreaterThan(1); // Poisson batches vary in size
  });

  it('dp – noise comes from the crypto source while the seeds stay reproducible', async () => {
    const run = async () =>
      (
        await trainMezo(
        model,
        TEST_LORA,
        freshAdapter(),
        data,
        { steps: 3, batchSize: 16, lr: 1e-3, eps: 1e-3, trainable: 'ffa', seed: 4 },
          { clip: 1, noiseMultiplier: 1, sampleRate: 0.25, noise: gaussianNoise },
        )
      ).trace;
    const a = await run();
    const b = await run();
    expect(b.map((t) => t.seed)).toEqual(a.map((t) => t.seed));
    expect(b.map((t) => t.g)).not.toEqual(a.map((t) => t.g));
  });
});
