import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { causalAttention, frozenMatMul, gelu, layerNorm, loraBranch, matMul, selectRows } from '../../src/model/ops.js';
import { maxAbsDiff } from './reference-gpt2.js';

/**
 * The fast-path ops must give the values and gradients of the stock tfjs compositions they replace. Gradients are
 * compared through a loss Σ w ⊙ f(x) with a random w, so every output element's gradient path counts.
 */
function compareGrads(
  ours: (...xs: tf.Tensor[]) => tf.Tensor,
  stock: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
): { value: number; grads: number[] } {
  return tf.tidy(() => {
    const weight = tf.randomNormal(stock(...inputs).shape, 0, 1, 'float32', 7);
    const loss = (f: (...xs: tf.Tensor[]) => tf.Tensor) => (...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), weight)) as tf.Scalar;
    const value = maxAbsDiff(ours(...inputs).dataSync(), stock(...inputs).dataSync());
    const g1 = tf.grads(loss(ours))(inputs);
    const g2 = tf.grads(loss(stock))(inputs);
    return { value, grads: g1.map((g, i) => maxAbsDiff(g.dataSync(), g2[i]!.dataSync())) };
  });
}

const rand = (shape: number[], seed: number): tf.Tensor => tf.randomNormal(shape, 0, 1, 'float32', seed);

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`ops on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });
    afterAll(async () => {
      await initBackend('cpu');
    });

    it(`ops – matMul, frozenMatMul and selectRows give stock values and gradients (${backend})`, () => {
      const a = rand([5, 3], 1) as tf.Tensor2D;
      const b = rand([3, 4], 2) as tf.Tensor2D;
      const bT = tf.transpose(b);
      const stock = (x: tf.Tensor, y: tf.Tensor): tf.Tensor => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D);
      const both = compareGrads((x, y) => matMul(x as tf.Tensor2D, y as tf.Tensor2D), stock, [a, b]);
      const frozen = compareGrads((x) => frozenMatMul(x as tf.Tensor2D, b, () => bT), (x) => stock(x, b), [a]);
      const select = compareGrads((y) => selectRows(a, y as tf.Tensor2D), (y) => stock(a, y), [b]);
      for (const r of [both, frozen, select]) {
        expect(r.value).toBeLessThan(1e-5);
        for (const g of r.grads) expect(g).toBeLessThan(1e-4);
      }
      tf.dispose([a, b, bT]);
    });

    it(`ops – loraBranch equals scale·x·Aᵀ·Bᵀ in value and in all three gradients (${backend})`, () => {
      const x = rand([6, 5], 3);
      const a = rand([2, 5], 4);
      const b = rand([7, 2], 5);
      const r = compareGrads(
        (xi, ai, bi) => loraBranch(xi as tf.Tensor2D, ai as tf.Tensor2D, bi as tf.Tensor2D, 1.5),
        (xi, ai, bi) => tf.mul(tf.matMul(tf.matMul(xi as tf.Tensor2D, ai as tf.Tensor2D, false, true), bi as tf.Tensor2D, false, true), 1.5),
        [x, a, b],
      );
      expect(r.value).toBeLessThan(1e-5);
      for (const g of r.grads) expect(g).toBeLessThan(1e-4);
      tf.dispose([x, a, b]);
    });

    it(`ops – sliced causal attention equals the stock formulation in value and in the qkv gradient (${backend})`, () => {
      const [b, t, h, d] = [2, 5, 3, 4];
      const qkv = rand([b * t, 3 * h * d], 6);
      const r = compareGrads(
        (x) => causalAttention(x as tf.Tensor2D, b, t, h, 'sliced'),
        (x) => causalAttention(x as tf.Tensor2D, b, t, h, 'stock'),
        [qkv],
      );
      expect(r.value).toBeLessThan(1e-5);
      expect(r.grads[0]).toBeLessThan(1e-4);
      qkv.dispose();
    });

    it(`ops – stock causal attention matches a hand-computed single head (${backend})`, () => {
      // one sequence, one head, d = 1, q = k = v = [1, 2]: y0 = 1, y1 = softmax([2, 4]) · [1, 2]
      const qkv = tf.tensor2d([1, 1, 1, 2, 2, 2], [2, 3]);
      const y = tf.tidy(() => [...causalAttention(qkv, 1, 2, 1, 'stock').dataSync()]);
      const w = Math.exp(2) / (Math.exp(2) + Math.exp(4));
      expect(maxAbsDiff(y, [1, w + 2 * (1 - w)])).toBeLessThan(1e-6);
      qkv.dispose();
    });
    it(`ops – gelu equals the tanh formula in value and gradient (${backend})`, () => {
      const x = tf.mul(rand([7, 9], 9), 3);
      const tanhForm = (v: tf.Tensor): tf.Tensor =>
        tf.mul(tf.mul(v, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(v, tf.mul(tf.mul(tf.mul(v, v), v), 0.044715)), Math.sqrt(2 / Math.PI)))));
      const r = compareGrads((v) => gelu(v as tf.Tensor2D), tanhForm, [x]);
      expect(r.value).toBeLessThan(1e-5);
      expect(r.grads[0]).toBeLessThan(1e-5);
      x.dispose();
    });
    it(`ops – layerNorm equals the stock formulation in value and in x, gain and bias gradients (${backend})`, () => {
      const x = tf.add(tf.mul(rand([6, 8], 10), 2), 1);
      const g = rand([8], 11);
      const b = rand([8], 12);
      const stock = (xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor): tf.Tensor => {
        const { mean, variance } = tf.moments(xi, -1, true);
        return tf.add(tf.mul(tf.div(tf.sub(xi, mean), tf.sqrt(tf.add(variance, 1e-5))), gi), bi);
      };
      const r = compareGrads((xi, gi, bi) => layerNorm(xi as tf.Tensor2D, gi as tf.Tensor1D, bi as tf.Tensor1D, 1e-5), stock, [x, g, b]);
      expect(r.value).toBeLessThan(1e-5);
      for (const d of r.grads) expect(d).toBeLessThan(1e-4);
      tf.dispose([x, g, b]);
    });
  });
}
