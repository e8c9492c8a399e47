import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { AdapterError, ModelDisposedError, ModelInputError, WeightsError } from '../../src/model/errors.js';
import { GPT2, GPT2_SMALL_WIDTH, initWeights, TINY_CONFIG, validateConfig } from '../../src/model/gpt2.js';
import type { LoraParams } from '../../src/model/lora.js';
import { toTf } from '../../src/model/lora.js';
import { idsTensor, maskTensor, randomAdapter, randomWeights, TEST_CONFIG, TEST_LORA } from './fixtures.js';
import { maxAbsDiff, referenceHidden, referenceLogits } from './reference-gpt2.js';

beforeAll(async () => {
  await initBackend('cpu');
});

function withAdapter<T>(seed: string, fn: (lora: LoraParams) => T): T {
  const tensors = toTf(randomAdapter(TEST_CONFIG, TEST_LORA, seed));
  try {
    return fn({ config: TEST_LORA, tensors });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

describe('gpt2 forward', () => {
  it('gpt2 – lmLogits match the independent float64 reference forward', () => {
    // Arrange
    const weights = randomWeights(TEST_CONFIG, 'ref');
    const model = new GPT2(TEST_CONFIG, weights);
    const ids = idsTensor(2, 9, TEST_CONFIG.vocabSize);
    // Act
    const logits = tf.tidy(() => model.lmLogits(ids).arraySync());
    // Assert
    const rows = ids.arraySync();
    rows.forEach((row, b) => {
      const ref = referenceLogits(TEST_CONFIG, weights, row);
      ref.forEach((expected, t) => expect(maxAbsDiff(logits[b]![t]!, expected)).toBeLessThan(1e-4));
    });
    model.dispose();
    ids.dispose();
  });

  it('gpt2 – classify applies score.weight to the hidden state at each row\'s last real token', () => {
    // Arrange
    const weights = randomWeights(TEST_CONFIG, 'cls');
    const model = new GPT2(TEST_CONFIG, weights);
    const ids = idsTensor(3, 8, TEST_CONFIG.vocabSize, 1);
    const lengths = [8, 3, 1];
    const mask = maskTensor(lengths, 8);
    const head = randomAdapter(TEST_CONFIG, TEST_LORA, 'h').get('score.weight')!;
    const zeroB = toTf(randomAdapter(TEST_CONFIG, TEST_LORA, 'h'));
    for (const [name, t] of zeroB) if (name.includes('lora_B')) zeroB.set(name, tf.zerosLike(t));
    // Act
    const scores = tf.tidy(() => model.classify(ids, mask, { config: TEST_LORA, tensors: zeroB }, 'last').arraySync());
    // Assert
    ids.arraySync().forEach((row, b) => {
      const last = referenceHidden(TEST_CONFIG, weights, row.slice(0, lengths[b]))[lengths[b]! - 1]!;
      const expected = Array.from({ length: TEST_LORA.numLabels }, (_, k) =>
        last.reduce((s, v, c) => s + v * head.data[k * TEST_CONFIG.nEmbd + c]!, 0),
      );
      expect(maxAbsDiff(scores[b]!, expected)).toBeLessThan(1e-4);
    });
    model.dispose();
    tf.dispose([ids, mask, ...zeroB.values()]);
  });

  it('gpt2 – classify by default applies score.weight to the mean hidden state of each row\'s real tokens', () => {
    // Arrange
    const weights = randomWeights(TEST_CONFIG, 'cls-mean');
    const model = new GPT2(TEST_CONFIG, weights);
    const ids = idsTensor(3, 8, TEST_CONFIG.vocabSize, 1);
    const lengths = [8, 3, 1];
    const mask = maskTensor(lengths, 8);
    const head = randomAdapter(TEST_CONFIG, TEST_LORA, 'h').get('score.weight')!;
    const zeroB = toTf(randomAdapter(TEST_CONFIG, TEST_LORA, 'h'));
    for (const [name, t] of zeroB) if (name.includes('lora_B')) zeroB.set(name, tf.zerosLike(t));
    // Act
    const scores = tf.tidy(() => model.classify(ids, mask, { config: TEST_LORA, tensors: zeroB }).arraySync());
    // Assert: padding must not leak into the mean, so each row matches the reference on its real tokens only
    ids.arraySync().forEach((row, b) => {
      const hidden = referenceHidden(TEST_CONFIG, weights, row.slice(0, lengths[b]));
      const mean = hidden[0]!.map((_, c) => hidden.reduce((s, h) => s + h[c]!, 0) / hidden.length);
      const expected = Array.from({ length: TEST_LORA.numLabels }, (_, k) =>
        mean.reduce((s, v, c) => s + v * head.data[k * TEST_CONFIG.nEmbd + c]!, 0),
      );
      expect(maxAbsDiff(scores[b]!, expected)).toBeLessThan(1e-4);
    });
    model.dispose();
    tf.dispose([ids, mask, ...zeroB.values()]);
  });

  it('gpt2 – collectHiddens returns one [B, T, C] output per block and the final hidden state', () => {
    const model = new GPT2(TEST_CONFIG, randomWeights(TEST_CONFIG, 'hid'));
    const ids = idsTensor(2, 5, TEST_CONFIG.vocabSize);
    tf.tidy(() => {
      const { hidden, layers } = model.forward(ids, undefined, { collectHiddens: true });
      expect(hidden.shape).toEqual([2, 5, TEST_CONFIG.nEmbd]);
      expect(layers.map((l) => l.shape)).toEqual([[2, 5, 16], [2, 5, 16]]);
      expect(model.forward(ids).layers).toEqual([]);
    });
    model.dispose();
    ids.dispose();
  });

  it('gpt2 – a gated adapter with gate 0 reproduces the base and with gate 1 the ungated adapter', () => {
    const model = new GPT2(TEST_CONFIG, randomWeights(TEST_CONFIG, 'gate'));
    const ids = idsTensor(2, 6, TEST_CONFIG.vocabSize);
    withAdapter('g', (lora) => {
      tf.tidy(() => {
        const base = model.lmLogits(ids);
        const adapted = model.lmLogits(ids, lora);
        const gated = model.lmLogits(ids, [{ ...lora, gate: tf.tensor1d([0, 1]) }]);
        const g = gated.arraySync();
        expect(maxAbsDiff(g[0]!.flat(), base.arraySync()[0]!.flat())).toBeLessThan(1e-5);
        expect(maxAbsDiff(g[1]!.flat(), adapted.arraySync()[1]!.flat())).toBeLessThan(1e-5);
        expect(maxAbsDiff(base.arraySync()[1]!.flat(), adapted.arraySync()[1]!.flat())).toBeGreaterThan(1e-3);
      });
    });
    model.dispose();
    ids.dispose();
  });

  it('gpt2 – 100 forward calls inside tf.tidy leave tf.memory().numTensors unchanged', () => {
    const model = new GPT2(TEST_CONFIG, randomWeights(TEST_CONFIG, 'mem'));
    const ids = idsTensor(2, 8, TEST_CONFIG.vocabSize);
    const mask = maskTensor([8, 4], 8);
    withAdapter('m', (lora) => {
      const backprop = (): void => {
        tf.tidy(() => {
          const name = 'h.0.attn.c_attn.lora_B.weight';
          tf.grads((b: tf.Tensor) => tf.sum(model.classify(ids, mask, { ...lora, tensors: new Map([...lora.tensors, [name, b]]) })))([
            lora.tensors.get(name)!,
          ]);
        });
      };
      // the first backprop and the first lmLogits cache Wᵀ of the frozen weights; nothing after them may allocate
      backprop();
      tf.tidy(() => {
        model.lmLogits(ids);
      });
      const before = tf.memory().numTensors;
      for (let i = 0; i < 100; i++) {
        tf.tidy(() => {
          model.lmLogits(ids, lora);
        });
      }
      tf.tidy(() => {
        model.classify(ids, mask, lora);
        model.forward(ids, lora, { collectHiddens: true });
      });
      backprop();
      expect(tf.memory().numTensors).toBe(before);
    });
    model.dispose();
    tf.dispose([ids, mask]);
  });
});

describe('gpt2 backends', () => {
  it('gpt2 – cpu and wasm backends agree on lmLogits and classify (≤ 1e-4), down to one-token sequences', async () => {
    // Arrange
    const weights = randomWeights(TEST_CONFIG, 'backends');
    const adapter = randomAdapter(TEST_CONFIG, TEST_LORA, 'backends');
    const run = (): { lm: number[]; cls: number[]; single: number[] } => {
      const model = new GPT2(TEST_CONFIG, weights);
      const tensors = toTf(adapter);
      const out = tf.tidy(() => {
        const ids = idsTensor(3, 10, TEST_CONFIG.vocabSize, 2);
        const lora = { config: TEST_LORA, tensors };
        return {
          lm: [...model.lmLogits(ids, lora).dataSync()],
          cls: [...model.classify(ids, maskTensor([10, 7, 2], 10), lora).dataSync()],
          single: [...model.lmLogits(idsTensor(1, 1, TEST_CONFIG.vocabSize), lora).dataSync()],
        };
      });
      model.dispose();
      tf.dispose([...tensors.values()]);
      return out;
    };
    // Act
    const cpu = run();
    await initBackend('wasm');
    const wasm = run();
    await initBackend('cpu');
    // Assert
    expect(maxAbsDiff(cpu.lm, wasm.lm)).toBeLessThan(1e-4);
    expect(maxAbsDiff(cpu.cls, wasm.cls)).toBeLessThan(1e-4);
    expect(maxAbsDiff(cpu.single, wasm.single)).toBeLessThan(1e-4);
  });
});

describe('gpt2 weights and config', () => {
  it('gpt2 – rejects missing, unexpected and mis-shaped weights, naming them', () => {
    const good = randomWeights(TEST_CONFIG, 'v');
    const missing = new Map(good);
    missing.delete('h.1.mlp.c_fc.bias');
    const extra = new Map(good).set('transformer.wte.weight', good.get('wte.weight')!);
    const bad = new Map(good).set('ln_f.bias', { shape: [3], data: new Float32Array(3) });
    expect(() => new GPT2(TEST_CONFIG, missing)).toThrow(/h\.1\.mlp\.c_fc\.bias/);
    expect(() => new GPT2(TEST_CONFIG, extra)).toThrow(WeightsError);
    try {
      new GPT2(TEST_CONFIG, bad);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(WeightsError);
      expect((err as WeightsError).code).toBe('weight_shape');
      expect((err as Error).message).toContain('ln_f.bias is [3], expected [16]');
    }
  });

  it('gpt2 – rejects configs whose width is not divisible by the head count', () => {
    expect(() => validateConfig({ ...TEST_CONFIG, nHead: 3 })).toThrow(/divisible/);
    expect(() => validateConfig(TINY_CONFIG)).not.toThrow();
    expect(() => validateConfig(GPT2_SMALL_WIDTH)).not.toThrow();
  });

  it('gpt2 – rejects sequences longer than nPositions and adapters lacking a targeted tensor', () => {
    const model = new GPT2(TEST_CONFIG, randomWeights(TEST_CONFIG, 'len'));
    const long = idsTensor(1, TEST_CONFIG.nPositions + 1, TEST_CONFIG.vocabSize);
    expect(() => tf.tidy(() => model.lmLogits(long))).toThrow(ModelInputError);
    const ids = idsTensor(1, 4, TEST_CONFIG.vocabSize);
    withAdapter('x', (lora) => {
      const partial = new Map(lora.tensors);
      partial.delete('h.1.mlp.c_proj.lora_B.weight');
      expect(() => tf.tidy(() => model.lmLogits(ids, { config: TEST_LORA, tensors: partial }))).toThrow(AdapterError);
    });
    model.dispose();
    expect(() => model.lmLogits(ids)).toThrow(ModelDisposedError);
    tf.dispose([long, ids]);
  });

  it('gpt2 – init is deterministic per seed and follows HF initialiser ranges', () => {
    const a = initWeights(TEST_CONFIG, 's');
    const b = initWeights(TEST_CONFIG, 's');
    const c = initWeights(TEST_CONFIG, 'other');
    expect(a.get('wte.weight')!.data).toEqual(b.get('wte.weight')!.data);
    expect(a.get('wte.weight')!.data).not.toEqual(c.get('wte.weight')!.data);
    const std = (d: Float32Array): number => Math.sqrt(d.reduce((s, v) => s + v * v, 0) / d.length);
    const big = initWeights({ ...TEST_CONFIG, nEmbd: 64, nHead: 4 }, 's');
    expect(std(big.get('h.0.mlp.c_fc.weight')!.data)).toBeCloseTo(0.02, 3);
    expect(std(big.get('h.0.mlp.c_proj.weight')!.data)).toBeCloseTo(0.02 / Math.sqrt(4), 3);
    expect(big.get('h.1.ln_2.weight')!.data.every((v) => v === 1)).toBe(true);
    expect(big.get('h.1.attn.c_attn.bias')!.data.every((v) => v === 0)).toBe(true);
  });
});

describe('gpt2 trainable base', () => {
  it('gpt2 – trainableBase gives the same logits via one-hot embedding and its variables learn', () => {
    // Arrange
    const weights = randomWeights(TEST_CONFIG, 'train');
    const frozen = new GPT2(TEST_CONFIG, weights);
    const trainable = new GPT2(TEST_CONFIG, weights, { trainableBase: true });
    const ids = idsTensor(2, 8, TEST_CONFIG.vocabSize);
    const targets = tf.oneHot(tf.tensor1d(new Int32Array(16).map((_, i) => (i * 31) % 257), 'int32'), 257);
    const loss = (): tf.Scalar =>
      tf.losses.softmaxCrossEntropy(targets, tf.reshape(trainable.lmLogits(ids), [16, 257])) as tf.Scalar;
    // Act
    const same = tf.tidy(() => maxAbsDiff(frozen.lmLogits(ids).dataSync(), trainable.lmLogits(ids).dataSync()));
    const before = tf.tidy(() => loss().dataSync()[0]!);
    const optimizer = tf.train.sgd(0.5);
    for (let i = 0; i < 3; i++) optimizer.minimize(loss, false, trainable.variables())?.dispose();
    const after = tf.tidy(() => loss().dataSync()[0]!);
    // Assert
    expect(same).toBeLessThan(1e-5);
    expect(trainable.variables()).toHaveLength(frozen.hostWeights().size);
    expect(frozen.variables()).toEqual([]);
    expect(after).toBeLessThan(before - 0.05);
    expect(trainable.hostWeights().get('wte.weight')!.data).not.toEqual(weights.get('wte.weight')!.data);
    frozen.dispose();
    trainable.dispose();
    optimizer.dispose();
    tf.dispose([ids, targets]);
  });
});
