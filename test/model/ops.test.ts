import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { attention, loraBranch, matMul } from '../../src/model/ops.js';
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

    it(`ops – matMul gives stock values and gradients for each operand choice (${backend})`, () => {
      const a = rand([5, 3], 1);
      const b = rand([3, 4], 2);
      const both = compareGrads((x, y) => matMul(x as tf.Tensor2D, y as tf.Tensor2D), (x, y) => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D), [a, b]);
      const onlyA = compareGrads((x) => matMul(x as tf.Tensor2D, b as tf.Tensor2D, 'a'), (x) => tf.matMul(x as tf.Tensor2D, b as tf.Tensor2D), [a]);
      const onlyB = compareGrads((y) => matMul(a as tf.Tensor2D, y as tf.Tensor2D, 'b'), (y) => tf.matMul(a as tf.Tensor2D, y as tf.Tensor2D), [b]);
      for (const r of [both, onlyA, onlyB]) {
        expect(r.value).toBeLessThan(1e-5);
        for (const g of r.grads) expect(g).toBeLessThan(1e-4);
      }
      tf.dispose([a, b]);
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

    it(`ops – attention equals masked softmax(q·kᵀ·scale)·v in value and in q, k, v gradients (${backend})`, () => {
      const [s, t, d] = [3, 5, 4];
      const q = rand([s, t, d], 6);
      const kT = rand([s, d, t], 7);
      const v = rand([s, t, d], 8);
      const mask = tf.tensor2d(Array.from({ length: t * t }, (_, i) => (i % t > Math.floor(i / t) ? -1e9 : 0)), [t, t]);
      const r = compareGrads(
        (qi, ki, vi) => attention(qi as tf.Tensor3D, ki as tf.Tensor3D, vi as tf.Tensor3D, mask, 0.5),
        (qi, ki, vi) => tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(qi as tf.Tensor3D, ki as tf.Tensor3D), 0.5), mask)), vi as tf.Tensor3D),
        [q, kT, v],
      );
      expect(r.value).toBeLessThan(1e-5);
      for (const g of r.grads) expect(g).toBeLessThan(1e-4);
      tf.dispose([q, kT, v, mask]);
    });
  });
}
