import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { installWasmTransposedMatMul } from '../../src/backend/wasm-matmul.js';

/** The reference product on plain arrays: a [.., m, k] (or transposed) times b, float64. */
function reference(a: tf.Tensor, b: tf.Tensor, ta: boolean, tb: boolean): tf.Tensor {
  const at = ta ? tf.transpose(a, [...Array(a.rank - 2).keys(), a.rank - 1, a.rank - 2]) : a;
  const bt = tb ? tf.transpose(b, [...Array(b.rank - 2).keys(), b.rank - 1, b.rank - 2]) : b;
  return tf.matMul(at, bt); // untransposed: the original XNNPACK path
}

describe('wasm transposed matMul', () => {
  beforeAll(async () => {
    await initBackend('wasm');
    expect(installWasmTransposedMatMul()).toBe(true);
    expect(installWasmTransposedMatMul()).toBe(true); // idempotent
    expect((tf.getKernel('BatchMatMul', 'wasm') as unknown as Record<symbol, boolean>)[Symbol.for('lethe.wasmTransposedMatMul')]).toBe(true);
  });

  it('wasm matMul – gives the explicit-transpose product for every flag combination and batch broadcast', () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[5, 3], [3, 4], false, false],
      [[5, 3], [4, 3], false, true],
      [[3, 5], [3, 4], true, false],
      [[3, 5], [4, 3], true, true],
      [[2, 3, 6, 4], [2, 3, 7, 4], false, true], // attention Q·Kᵀ
      [[2, 4, 6], [4, 5], true, false], // batch broadcast of a 2-D operand
    ];
    for (const [sa, sb, ta, tb] of cases) {
      const [got, want] = tf.tidy(() => {
        const a = tf.randomNormal(sa, 0, 1, 'float32', 1);
        const b = tf.randomNormal(sb, 0, 1, 'float32', 2);
        return [tf.matMul(a, b, ta, tb), reference(a, b, ta, tb)];
      });
      expect(got.shape).toEqual(want.shape);
      const g = got.dataSync();
      const w = want.dataSync();
      for (let i = 0; i < w.length; i++) expect(g[i]).toBeCloseTo(w[i]!, 4);
      tf.dispose([got, want]);
    }
  });

  it('wasm matMul – frees its temporary transposes', () => {
    const a = tf.randomNormal([8, 16]);
    const b = tf.randomNormal([8, 16]);
    const backend = tf.engine().backend;
    const before = backend.numDataIds();
    for (let i = 0; i < 5; i++) tf.matMul(a, b, true, false).dispose();
    expect(backend.numDataIds()).toBe(before);
    tf.dispose([a, b]);
  });

  it('wasm matMul – gradients through transposed products match the reference', () => {
    const a = tf.randomNormal([4, 3], 0, 1, 'float32', 3);
    const b = tf.randomNormal([5, 3], 0, 1, 'float32', 4);
    const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y, false, true))))([a, b]);
    const [ra, rb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, tf.transpose(y)))))([a, b]);
    for (const [g, r] of [[ga, ra], [gb, rb]] as const) {
      const gd = g!.dataSync();
      const rd = r!.dataSync();
      for (let i = 0; i < rd.length; i++) expect(gd[i]).toBeCloseTo(rd[i]!, 3);
    }
    tf.dispose([a, b, ga!, gb!, ra!, rb!]);
  });
});
