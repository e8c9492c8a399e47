import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { installWasmTransposedMatMul } from '../../src/backend/wasm-matmul.js';
import { GPT2 } from '../../src/model/gpt2.js';
import { initAdapter } from '../../src/model/lora.js';
import type { NoiseSource } from '../../src/privacy/gaussian.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { distance } from '../../src/tensors/host.js';
import { trainBackprop } from '../../src/train/backprop.js';
import { TrainError } from '../../src/train/errors.js';
import { evaluate } from '../../src/train/evaluate.js';
import { isLoraA } from '../../src/train/types.js';
import { TINY, TINY_LORA, spamSubset } from './fixtures.js';

const zeroNoise: NoiseSource = (n) => new Float64Array(n);

function bitwiseEqual(a: HostTensor, b: HostTensor): boolean {
  return a.data.length === b.data.length && a.data.every((v, i) => Object.is(v, b.data[i]));
}

describe('backprop trainer', () => {
  let model: GPT2;
  const data = spamSubset(48);
  const start = initAdapter(TINY, TINY_LORA);

  beforeAll(async () => {
    await initBackend('wasm'); // ~5× faster than cpu for these small models; LoRA training needs no gather gradient
    installWasmTransposedMatMul();
    model = GPT2.init(TINY, 'backprop-test');
  });

  it('backprop – lowers the training loss on real spam examples', async () => {
    const before = evaluate(model, TINY_LORA, start, data);
    const result = await trainBackprop(model, TINY_LORA, start, data, { steps: 40, batchSize: 8, lr: 1e-2, trainable: 'lora', seed: 1 });
    const after = evaluate(model, TINY_LORA, result.adapter, data);
    expect(after.loss).toBeLessThan(before.loss - 0.05);
    expect(result.metrics.loss_after).toBeLessThan(result.metrics.loss_before);
    expect(result.numExamples).toBe(48);
    expect(result.metrics.steps).toBe(40);
  });

  it('backprop – is bitwise deterministic given the seed', async () => {
    const opts = { steps: 5, batchSize: 8, lr: 1e-2, trainable: 'lora' as const, seed: 7 };
    const a = await trainBackprop(model, TINY_LORA, start, data, opts);
    const b = await trainBackprop(model, TINY_LORA, start, data, opts);
    const c = await trainBackprop(model, TINY_LORA, start, data, { ...opts, seed: 8 });
    for (const [name, t] of a.adapter) expect(bitwiseEqual(t, b.adapter.get(name)!), name).toBe(true);
    expect([...a.adapter].every(([name, t]) => bitwiseEqual(t, c.adapter.get(name)!))).toBe(false);
  });

  it('backprop – ffa leaves every lora_A bitwise unchanged and trains only lora_B and the head', async () => {
    const result = await trainBackprop(model, TINY_LORA, start, data, { steps: 3, batchSize: 8, lr: 1e-2, trainable: 'ffa', seed: 2 });
    expect(result.trainable).toEqual([...start.keys()].filter((n) => !isLoraA(n)));
    expect([...result.adapter.keys()]).toEqual([...start.keys()]);
    for (const [name, t] of result.adapter) {
      expect(bitwiseEqual(t, start.get(name)!), name).toBe(isLoraA(name));
    }
  });

  it('backprop – lora trains lora_A, lora_B and the head', async () => {
    const result = await trainBackprop(model, TINY_LORA, start, data, { steps: 3, batchSize: 8, lr: 1e-2, trainable: 'lora', seed: 2 });
    expect(result.trainable).toEqual([...start.keys()]);
    for (const [name, t] of result.adapter) expect(bitwiseEqual(t, start.get(name)!), name).toBe(false);
  });

  it('backprop – holds tf.memory().numTensors constant over 100 steps', async () => {
    const counts: number[] = [];
    const before = tf.memory().numTensors;
    await trainBackprop(model, TINY_LORA, start, data, {
      steps: 100,
      batchSize: 4,
      lr: 1e-3,
      trainable: 'ffa',
      seed: 3,
      clipGradNorm: 1,
      onStep: () => counts.push(tf.memory().numTensors),
    });
    expect(new Set(counts).size).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('backprop – rejects a start adapter that does not fit the model', async () => {
    const wrong = initAdapter(TINY, { ...TINY_LORA, r: 2 });
    await expect(trainBackprop(model, TINY_LORA, wrong, data, { steps: 1, batchSize: 4, lr: 1e-3, trainable: 'ffa', seed: 0 })).rejects.toMatchObject({
      code: 'bad_adapter',
    });
    await expect(trainBackprop(model, { ...TINY_LORA, numLabels: 1 }, initAdapter(TINY, { ...TINY_LORA, numLabels: 1 }), data, { steps: 1, batchSize: 4, lr: 1e-3, trainable: 'ffa', seed: 0 })).rejects.toBeInstanceOf(TrainError);
  });

  it('dp-sgd – with zero noise one SGD step moves the trainable tensors by at most lr·|batch|·C/(qN)', async () => {
    const sizes: number[] = [];
    const opts = { steps: 1, batchSize: 1, lr: 1, trainable: 'ffa' as const, seed: 9, optimizer: 'sgd' as const, onStep: (s: { batchSize: number }) => sizes.push(s.batchSize) };
    const dp = { clip: 1e-3, noiseMultiplier: 0, sampleRate: 0.25, noise: zeroNoise };
    const clipped = await trainBackprop(model, TINY_LORA, start, data, opts, dp);
    const unclipped = await trainBackprop(model, TINY_LORA, start, data, opts, { ...dp, clip: 1e3 });
    const stepNorm = (r: { adapter: Map<string, HostTensor> }): number => distance(r.adapter, start);
    const bound = (1 * sizes[0]! * dp.clip) / (dp.sampleRate * data.n);
    expect(sizes[0]).toBeGreaterThan(0);
    expect(clipped.metrics.dp_clip_fraction).toBe(1);
    expect(stepNorm(clipped)).toBeGreaterThan(0);
    expect(stepNorm(clipped)).toBeLessThanOrEqual(bound * (1 + 1e-5));
    expect(unclipped.metrics.dp_clip_fraction).toBe(0);
    expect(stepNorm(unclipped)).toBeGreaterThan(10 * bound);
  });

  it('dp-sgd – draws Poisson batches of mean q·N and noise of std σ·C over every trainable coordinate', async () => {
    const sizes: number[] = [];
    const draws: { n: number; std: number }[] = [];
    const recording: NoiseSource = (n, std) => {
      draws.push({ n, std });
      return new Float64Array(n);
    };
    const result = await trainBackprop(
      model,
      TINY_LORA,
      start,
      data,
      { steps: 40, batchSize: 1, lr: 1e-3, trainable: 'ffa', seed: 4, onStep: (s) => sizes.push(s.batchSize) },
      { clip: 0.5, noiseMultiplier: 1.3, sampleRate: 0.125, noise: recording },
    );
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    expect(mean).toBeGreaterThan(6 - 1.5); // q·N = 6; the mean of 40 draws has std ≈ 0.36
    expect(mean).toBeLessThan(6 + 1.5);
    expect(new Set(sizes).size).toBeGreaterThan(1);
    const trainableSize = result.trainable.reduce((a, n) => a + start.get(n)!.data.length, 0);
    expect(draws).toHaveLength(40);
    for (const d of draws) expect(d).toEqual({ n: trainableSize, std: 1.3 * 0.5 });
    expect(result.metrics.dp_expected_batch).toBe(6);
    for (const [name, t] of result.adapter) if (isLoraA(name)) expect(bitwiseEqual(t, start.get(name)!)).toBe(true);
  });

  it('dp-sgd – with zero noise is deterministic given the seed, and noise changes the result', async () => {
    const opts = { steps: 4, batchSize: 1, lr: 1e-2, trainable: 'ffa' as const, seed: 5 };
    const dp = { clip: 1, noiseMultiplier: 0, sampleRate: 0.1, noise: zeroNoise };
    const a = await trainBackprop(model, TINY_LORA, start, data, opts, dp);
    const b = await trainBackprop(model, TINY_LORA, start, data, opts, dp);
    for (const [name, t] of a.adapter) expect(bitwiseEqual(t, b.adapter.get(name)!), name).toBe(true);
    const noisy = await trainBackprop(model, TINY_LORA, start, data, opts, { ...dp, noiseMultiplier: 1, noise: (n, std) => new Float64Array(n).fill(std) });
    expect([...a.adapter].every(([name, t]) => bitwiseEqual(t, noisy.adapter.get(name)!))).toBe(false);
  });
});
