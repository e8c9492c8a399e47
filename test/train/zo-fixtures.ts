/**
 * Shared fixtures of the forward-only trainer tests (mezo, seed-pool, essa): a tiny GPT-2 (width 32, 2 layers,
 * 16 tokens) and a synthetic task the classifier can learn: tokens come from a 16-symbol alphabet (few enough points
 * to be linearly separable at width 32) and the label is which half of the alphabet the example's tokens come from (a property of the
 * mean-pooled sequence, which is how the classifier pools).
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

/** n examples of length seqLen (padded on the right, 4..seqLen real tokens); label = the half of the alphabet its tokens come from. */
export function syntheticTask(n: number, seed: string, seqLen = TEST_CONFIG.nPositions): EncodedExamples {
  const rng = seedrandom.alea(seed);
  const ids = new Int32Array(n * seqLen);
  const mask = new Float32Array(n * seqLen);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const len = 4 + Math.floor(rng() * (seqLen - 3));
    const upper = rng() < 0.5 ? 1 : 0; // every token of an example comes from one half of the alphabet
    for (let t = 0; t < len; t++) {
      ids[i * seqLen + t] = 1 + 7 * (upper * (ALPHABET / 2) + Math.floor(rng() * (ALPHABET / 2)));
      mask[i * seqLen + t] = 1;
    }
    labels[i] = upper;
  }
  return { n, seqLen, ids, mask, labels };
}
