/** Shared fixtures for the trainer tests: a tiny GPT-2 and a small real SpamAssassin subset. */
import type { GPT2Config } from '../../src/model/gpt2.js';
import type { LoraConfig } from '../../src/model/lora.js';
import { encodeExamples, spamAssassin } from '../../src/data/index.js';
import { byteTokenizer } from '../../src/model/tokenizer.js';
import type { EncodedExamples } from '../../src/train/types.js';

export const TINY: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });

export const TINY_LORA: LoraConfig = Object.freeze({
  r: 4,
  alpha: 8,
  targets: Object.freeze(['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const),
  numLabels: 2,
  seed: 'test-lora',
});

/** `n` SpamAssassin examples, alternating ham and spam so both classes appear, encoded to `seqLen` bytes. */
export function spamSubset(n: number, seqLen = 24): EncodedExamples {
  const ds = spamAssassin();
  const byLabel = [ds.examples.filter((e) => e.label === 0), ds.examples.filter((e) => e.label === 1)];
  const picked = Array.from({ length: n }, (_, i) => byLabel[i % 2]![Math.floor(i / 2)]!);
  return encodeExamples(picked, byteTokenizer(), seqLen);
}
