import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { GPT2 } from '../../src/model/gpt2.js';
import { BaseFeatures, POOLINGS, featureDim, widestPooling } from '../../src/unlearning/features.js';
import { SMALL } from './fixtures.js';

const T = 6;
// Two rows: 4 real tokens then pads, and a row of pads only (an empty text).
const IDS = [72, 105, 33, 10, 0, 0, 0, 0, 0, 0, 0, 0];
const MASK = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0];

describe('unlearning features', () => {
  let model: GPT2;

  beforeAll(async () => {
    await initBackend('cpu');
    model = GPT2.init(SMALL, 'features-test');
  });

  const pooled = (layers: number[], pooling: (typeof POOLINGS)[number]): Float32Array[] => {
    const base = new BaseFeatures(model);
    try {
      const out = tf.tidy(() => base.pooled(tf.tensor2d(IDS, [2, T], 'int32'), tf.tensor2d(MASK, [2, T]), layers, pooling));
      const host = out.map((t) => t.dataSync() as Float32Array);
      tf.dispose(out);
      return host;
    } finally {
      base.dispose();
    }
  };

  it('features – max and min pooling read the real tokens only, and an empty row pools to zeros', () => {
    // Arrange: the embedding output of row 0's real tokens, on the host
    const c = SMALL.nEmbd;
    const w = model.hostWeights();
    const wte = w.get('wte.weight')!.data;
    const wpe = w.get('wpe.weight')!.data;
    const tokens = [0, 1, 2, 3].map((t) => Array.from({ length: c }, (_, k) => wte[IDS[t]! * c + k]! + wpe[t * c + k]!));

    const tensors = tf.memory().numTensors;

    // Act
    const [f] = pooled([0], 'mean+std+max+min');

    // Assert: columns are mean | std | max | min; pads (token 0 at positions 4, 5) never win
    expect(f).toHaveLength(2 * featureDim(c, 'mean+std+max+min'));
    for (let k = 0; k < c; k++) {
      expect(f![2 * c + k]).toBeCloseTo(Math.max(...tokens.map((h) => h[k]!)), 5);
      expect(f![3 * c + k]).toBeCloseTo(Math.min(...tokens.map((h) => h[k]!)), 5);
    }
    expect(f!.subarray(4 * c).every((v) => v === 0)).toBe(true); // ±0
    expect(tf.memory().numTensors).toBe(tensors);
  });

  it('features – every pooling is a prefix of the next wider one, at the embeddings and after a block', () => {
    const [mean0, mean1] = pooled([0, 1], 'mean');
    const [std0, std1] = pooled([0, 1], 'mean+std');
    const [all0, all1] = pooled([0, 1], 'mean+std+max+min');
    const c = SMALL.nEmbd;
    const prefix = (wide: Float32Array, width: number, cols: number): number[] =>
      [0, 1].flatMap((row) => Array.from(wide.subarray(row * width, row * width + cols)));
    expect(prefix(std0!, 2 * c, c)).toEqual(Array.from(mean0!));
    expect(prefix(all0!, 4 * c, 2 * c)).toEqual(Array.from(std0!));
    expect(prefix(all1!, 4 * c, 2 * c)).toEqual(Array.from(std1!));
    expect(prefix(std1!, 2 * c, c)).toEqual(Array.from(mean1!));
  });

  it('features – the widest pooling is the one whose columns hold every other as a prefix', () => {
    expect(widestPooling(['mean+std', 'mean+std+max+min', 'mean'])).toBe('mean+std+max+min');
    expect(widestPooling(['mean', 'mean+std'])).toBe('mean+std');
    expect(widestPooling([])).toBe('mean');
  });
});
