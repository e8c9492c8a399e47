import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { GPT2 } from '../../src/model/gpt2.js';
import { initAdapter } from '../../src/model/lora.js';
import type { EncodedExamples } from '../../src/train/types.js';
import { DEFAULT_UNLEARNING_ADAPTER, replacementLabels, trainUnlearningAdapter } from '../../src/unlearning/adapter.js';
import { UnlearningError } from '../../src/unlearning/errors.js';
import { SMALL, UTILITY_LORA, encode, groupSplit } from './fixtures.js';

/** Rows with given last tokens and labels: row i is [7, lastTokens[i]] followed by padding. */
function rows(lastTokens: number[], labels: number[]): EncodedExamples {
  const n = lastTokens.length;
  const ids = new Int32Array(n * 4);
  const mask = new Float32Array(n * 4);
  lastTokens.forEach((tok, i) => {
    ids.set([7, tok], i * 4);
    mask.set([1, 1], i * 4);
  });
  return { n, seqLen: 4, ids, mask, labels: Int32Array.from(labels) };
}

describe('unlearning adapter', () => {
  it('replacementLabels – input_hash_label is a function of the last token, balanced over the forget rows', () => {
    const last = [5, 6, 5, 9, 6, 5, 11, 12, 9, 6];
    const data = rows(last, new Array(last.length).fill(1)); // a single-class forget set
    const targets = replacementLabels(data, 2, 'input_hash_label', 3);
    last.forEach((tok, i) => last.forEach((other, j) => tok === other && expect(targets[i]).toBe(targets[j])));
    const ones = targets.reduce((a, y) => a + y, 0);
    expect(Math.abs(ones - last.length / 2)).toBeLessThanOrEqual(1); // so a fitted adapter keeps half: chance
  });

  it('replacementLabels – random_label is balanced, random_wrong_label never keeps the true label', () => {
    const labels = Array.from({ length: 30 }, (_, i) => i % 3);
    const data = rows(labels.map((_, i) => i), labels);
    const balanced = replacementLabels(data, 3, 'random_label', 1);
    expect([0, 1, 2].map((k) => balanced.filter((y) => y === k).length)).toEqual([10, 10, 10]);
    const wrong = replacementLabels(data, 3, 'random_wrong_label', 1);
    wrong.forEach((y, i) => expect(y).not.toBe(labels[i]));
    expect(new Set(wrong).size).toBe(3);
  });

  describe('validation', () => {
    let model: GPT2;
    beforeAll(async () => {
      await initBackend('cpu');
      model = GPT2.init(SMALL, 'adapter-validation');
    });

    it('trainUnlearningAdapter – refuses an unlearning LoRA with its own head, and an empty forget set', async () => {
      const utility = { lora: UTILITY_LORA, adapter: initAdapter(SMALL, UTILITY_LORA) };
      const forget = encode(groupSplit().train('spam-2', 4));
      const withHead = { ...DEFAULT_UNLEARNING_ADAPTER, lora: { ...DEFAULT_UNLEARNING_ADAPTER.lora, numLabels: 2 } };
      await expect(trainUnlearningAdapter(model, utility, forget, [], withHead)).rejects.toThrow(/numLabels must be 0/);
      await expect(trainUnlearningAdapter(model, utility, { ...forget, subset: [] }, [])).rejects.toThrow(UnlearningError);
    });
  });
});
