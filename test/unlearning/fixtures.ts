/** A small real-data unlearning scenario shared by the unlearning tests: a tiny GPT-2, a utility adapter trained on
 * SpamAssassin, and SpamAssassin groups to forget. Built once per test file (beforeAll). */
import { encodeExamples, spamAssassin, trainTestSplit } from '../../src/data/index.js';
import type { Example } from '../../src/data/index.js';
import type { GPT2Config } from '../../src/model/gpt2.js';
import { GPT2 } from '../../src/model/gpt2.js';
import type { LoraConfig } from '../../src/model/lora.js';
import { LORA_TARGETS, initAdapter } from '../../src/model/lora.js';
import { byteTokenizer } from '../../src/model/tokenizer.js';
import { trainBackprop } from '../../src/train/backprop.js';
import type { EncodedExamples } from '../../src/train/types.js';
import type { UtilityAdapter } from '../../src/unlearning/adapter.js';

export const SMALL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });
export const SEQ_LEN = 32;
export const UTILITY_LORA: LoraConfig = Object.freeze({ r: 4, alpha: 8, targets: LORA_TARGETS, numLabels: 2, seed: 'unlearning-test' });
export const GROUPS = ['easy-ham-1', 'easy-ham-2', 'hard-ham-1', 'spam-1', 'spam-2'] as const;

export function encode(examples: readonly Example[]): EncodedExamples {
  return encodeExamples(examples, byteTokenizer(), SEQ_LEN);
}

/** The split, by group: train and test mails of each group (seeded shuffle, so threads spread over both). */
export function groupSplit(): { train: (g: string, n: number) => Example[]; test: (g: string, n: number) => Example[] } {
  const { train, test } = trainTestSplit(spamAssassin(), { testFraction: 0.3, seed: 'unlearning-test' });
  const take = (examples: readonly Example[]) => (g: string, n: number): Example[] => examples.filter((e) => e.meta.group === g).slice(0, n);
  return { train: take(train.examples), test: take(test.examples) };
}

/** A random-init SMALL model and a utility adapter trained on `perGroup` train mails of every group. */
export async function utilityScenario(perGroup: number, steps: number): Promise<{ model: GPT2; utility: UtilityAdapter }> {
  const model = GPT2.init(SMALL, 'unlearning-test');
  const split = groupSplit();
  const data = encode(GROUPS.flatMap((g) => split.train(g, perGroup)));
  const result = await trainBackprop(model, UTILITY_LORA, initAdapter(SMALL, UTILITY_LORA), data, { steps, batchSize: 16, lr: 1e-2, trainable: 'lora', seed: 3 });
  return { model, utility: { lora: UTILITY_LORA, adapter: result.adapter } };
}
