/** Shared test fixtures: a tiny GPT-2 with every weight random (so LayerNorm gains and biases are exercised too). */
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import type { GPT2Config } from '../../src/model/gpt2.js';
import { weightShapes } from '../../src/model/gpt2.js';
import type { LoraConfig } from '../../src/model/lora.js';
import { initAdapter } from '../../src/model/lora.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { sizeOf } from '../../src/tensors/host.js';

export const TEST_CONFIG: GPT2Config = Object.freeze({
  vocabSize: 257,
  nPositions: 16,
  nEmbd: 16,
  nLayer: 2,
  nHead: 2,
  layerNormEpsilon: 1e-5,
});

export const TEST_LORA: LoraConfig = Object.freeze({
  r: 4,
  alpha: 8,
  targets: Object.freeze(['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const),
  numLabels: 3,
  seed: 'test',
});

function gaussian(rng: () => number, n: number, mean: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - rng();
    out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
  }
  return out;
}

/** Every weight random: LayerNorm gains ~ N(1, 0.1²), everything else ~ N(0, 0.2²). */
export function randomWeights(config: GPT2Config, seed: string): Map<string, HostTensor> {
  const rng = seedrandom(seed);
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of weightShapes(config)) {
    const gain = name.includes('ln_') && name.endsWith('.weight');
    out.set(name, { shape, data: gaussian(rng, sizeOf(shape), gain ? 1 : 0, gain ? 0.1 : 0.2) });
  }
  return out;
}

/** initAdapter's tensors with B (and everything else) replaced by random values, so the adapter changes outputs. */
export function randomAdapter(config: GPT2Config, lora: LoraConfig, seed: string): Map<string, HostTensor> {
  const rng = seedrandom(seed);
  const out = new Map<string, HostTensor>();
  for (const [name, t] of initAdapter(config, lora)) out.set(name, { shape: t.shape, data: gaussian(rng, t.data.length, 0, 0.3) });
  return out;
}

/** Deterministic ids in [0, vocab). */
export function idsTensor(batch: number, time: number, vocab: number, salt = 0): tf.Tensor2D {
  const data = new Int32Array(batch * time).map((_, i) => (i * 7919 + salt * 104729 + 13) % vocab);
  return tf.tensor2d(data, [batch, time], 'int32');
}

/** A right-padded mask with the given real lengths per row. */
export function maskTensor(lengths: readonly number[], time: number): tf.Tensor2D {
  const data = new Float32Array(lengths.length * time);
  lengths.forEach((len, b) => data.fill(1, b * time, b * time + len));
  return tf.tensor2d(data, [lengths.length, time]);
}
