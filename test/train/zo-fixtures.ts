/**
 * Shared fixtures of the forward-only trainer tests (mezo, seed-pool, essa): a tiny GPT-2 (width 32, 2 layers,
 * 16 tokens) and a synthetic task the classifier can learn: tokens come from a 16-symbol alphabet (few enough points
 * to be linearly separable at width 32) and the label is whether the last real token is in the alphabet's upper half.
 */
import seedrandom from 'seedrandom';
import { GPT2, type GPT2Config } from '../../src/model/gpt2.js';
import { initAdapter, type LoraConfig } from '../../src/model/lora.js';
import type { HostTensor } from '../../src/tensors/host.js';
import type { EncodedExamples } from '../../src/train/types.js';

export const TEST_CONFIG: GPT2Config = Object.freeze({
  vocabSize: 257,
  nPositions: 16,
  nEmbd: 32,
  nLayer: 2,
  nHead: 2,
  layerNormEpsilon: 1e-5,
});

export const TEST_LORA: LoraConfig = Object.freeze({
  r: 4,
  alpha: 8,
  targets: Object.freeze(['attn.c_attn', 'attn.c_proj'] as const),
  numLabels: 2,
  seed: 'zo-test',
});

export function tinyModel(): GPT2 {
  return GPT2.init(TEST_CONFIG, 'zo-test-base');
}

export function freshAdapter(): Map<string, HostTensor> {
  return initAdapter(TEST_CONFIG, TEST_LORA);
}

const ALPHABET = 16;

/** n examples of length seqLen (padded on the right, 4..seqLen real tokens); label = last real token ≥ 8·step. */
export function syntheticTask(n: number, seed: string, seqLen = TEST_CONFIG.nPositions): EncodedExamples {
  const rng = seedrandom.alea(seed);
  const ids = new Int32Array(n * seqLen);
  const mask = new Float32Array(n * seqLen);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const len = 4 + Math.floor(rng() * (seqLen - 3));
    for (let t = 0; t < len; t++) {
      ids[i * seqLen + t] = 1 + 7 * Math.floor(rng() * ALPHABET);
      mask[i * seqLen + t] = 1;
    }
    labels[i] = ids[i * seqLen + len - 1]! >= 1 + 7 * (ALPHABET / 2) ? 1 : 0;
  }
  return { n, seqLen, ids, mask, labels };
}
