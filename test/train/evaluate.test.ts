import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { GPT2 } from '../../src/model/gpt2.js';
import { HEAD_NAME, initAdapter, toTf } from '../../src/model/lora.js';
import { evaluate, perplexity } from '../../src/train/evaluate.js';
import type { EncodedExamples } from '../../src/train/types.js';
import { TINY, TINY_LORA, spamSubset } from './fixtures.js';

describe('evaluation', () => {
  let model: GPT2;
  beforeAll(async () => {
    await initBackend('wasm');
    model = GPT2.init(TINY, 'evaluate-test');
  });

  it('evaluate – a zero head scores loss ln 2 and the accuracy of always answering class 0', () => {
    const adapter = initAdapter(TINY, TINY_LORA);
    adapter.set(HEAD_NAME, { shape: [2, TINY.nEmbd], data: new Float32Array(2 * TINY.nEmbd) });
    const base = spamSubset(6);
    const data: EncodedExamples = { ...base, labels: Int32Array.from([0, 0, 1, 0, 1, 1]) };
    const result = evaluate(model, TINY_LORA, adapter, data);
    expect(result.n).toBe(6);
    expect(result.loss).toBeCloseTo(Math.LN2, 6);
    expect(result.accuracy).toBeCloseTo(3 / 6, 12); // argmax ties go to class 0
  });

  it('evaluate – matches one unbatched forward pass and honours the subset', () => {
    const adapter = initAdapter(TINY, TINY_LORA);
    const data = spamSubset(10);
    const tensors = toTf(adapter);
    const [logits] = tf.tidy(() => [
      model.classify(tf.tensor2d(data.ids, [10, data.seqLen], 'int32'), tf.tensor2d(data.mask, [10, data.seqLen]), { config: TINY_LORA, tensors }),
    ]);
    const l = logits!.arraySync() as number[][];
    const lossOf = (i: number): number => {
      const row = l[i]!;
      const m = Math.max(...row);
      return m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[data.labels[i]!]!;
    };
    const rows = [1, 4, 7, 8, 9];
    const expected = {
      loss: rows.reduce((a, i) => a + lossOf(i), 0) / rows.length,
      accuracy: rows.filter((i) => (l[i]![1]! > l[i]![0]! ? 1 : 0) === data.labels[i]).length / rows.length,
    };
    const got = evaluate(model, TINY_LORA, adapter, { ...data, subset: rows }, { batchSize: 2 });
    expect(got.n).toBe(5);
    expect(got.loss).toBeCloseTo(expected.loss, 5);
    expect(got.accuracy).toBeCloseTo(expected.accuracy, 12);
    logits!.dispose();
    for (const t of tensors.values()) t.dispose();
  });

  it('perplexity – of an untrained model is close to the vocabulary size, over whole windows only', () => {
    const tokens = Int32Array.from({ length: 3 * 17 + 5 }, (_, i) => (i * 31) % 256);
    const r = perplexity(model, tokens, 16, undefined, { batchSize: 2 });
    expect(r.tokens).toBe(3 * 16);
    expect(r.perplexity).toBeCloseTo(Math.exp(r.loss), 9);
    expect(r.perplexity).toBeGreaterThan(150);
    expect(r.perplexity).toBeLessThan(400);
  });
});
