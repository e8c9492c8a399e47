import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { installWasmTransposedMatMul } from '../../src/backend/wasm-matmul.js';
import { GPT2 } from '../../src/model/gpt2.js';
import type { LoraParams } from '../../src/model/lora.js';
import { initAdapter, toTf } from '../../src/model/lora.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { UNLEARNING_LORA } from '../../src/unlearning/adapter.js';
import { DEFAULT_DETECTOR, detectorLayers, fitDetector } from '../../src/unlearning/detector.js';
import { detectorScores } from '../../src/unlearning/device-detector.js';
import { BaseFeatures, extractFeatures } from '../../src/unlearning/features.js';
import type { Gate } from '../../src/unlearning/gate.js';
import { UnlearningServing } from '../../src/unlearning/serving.js';
import { encode, groupSplit, SMALL, UTILITY_LORA } from './fixtures.js';

// No training: a random base, a random utility adapter and an unlearning adapter whose B's are random too (initAdapter
// zeroes them), so the gated branch changes the output; the gate is centred on the batch's median score so that
// about half its rows are gated (the cutoff zeroes every weight below ½).
const LORA = { ...UNLEARNING_LORA, r: 4, alpha: 8 };

function randomB(adapter: Map<string, HostTensor>): Map<string, HostTensor> {
  let s = 1;
  const next = (): number => ((s = (s * 16807) % 2147483647) / 2147483647 - 0.5) * 0.5;
  return new Map([...adapter].map(([name, t]) => [name, name.includes('.lora_B.') ? { ...t, data: Float32Array.from(t.data, next) } : t]));
}

describe('unlearning serving', () => {
  let model: GPT2;
  let serving: UnlearningServing;
  let utility: LoraParams;
  let hostScores: Float64Array; // the detector's scores of the batch, from host features (input block included)
  const split = groupSplit();
  const batch = encode([...split.test('hard-ham-1', 6), ...split.test('easy-ham-1', 6), ...split.test('spam-1', 4)]);
  const ids = (): tf.Tensor2D => tf.tensor2d(batch.ids, [batch.n, batch.seqLen], 'int32');
  const mask = (): tf.Tensor2D => tf.tensor2d(batch.mask, [batch.n, batch.seqLen]);

  beforeAll(async () => {
    await initBackend('wasm');
    installWasmTransposedMatMul();
    model = GPT2.init(SMALL, 'serving-test');
    const layers = detectorLayers(DEFAULT_DETECTOR, SMALL.nLayer);
    const feats = (g: string, n: number) => extractFeatures(model, encode(split.train(g, n)), layers, DEFAULT_DETECTOR.pooling, 32, DEFAULT_DETECTOR.input ?? undefined);
    const { detector } = fitDetector(feats('hard-ham-1', 24), feats('easy-ham-1', 40), DEFAULT_DETECTOR);
    hostScores = detectorScores(detector, extractFeatures(model, batch, layers, DEFAULT_DETECTOR.pooling, 32, DEFAULT_DETECTOR.input ?? undefined)).scores;
    const scores = [...hostScores].sort((a, b) => a - b);
    const gate: Gate = { center: scores[scores.length >> 1]!, slope: 4, cutoff: 0.5, memberCos: 2, maxDistance: Infinity };
    const adapter = randomB(initAdapter(SMALL, LORA));
    const utilityAdapter = randomB(initAdapter(SMALL, UTILITY_LORA));
    serving = new UnlearningServing(model, { lora: UTILITY_LORA, adapter: utilityAdapter }, [{ id: 'r1', lora: LORA, adapter, detector, gate }]);
    utility = { config: UTILITY_LORA, tensors: toTf(utilityAdapter) };
  }, 60_000);

  afterAll(() => {
    serving?.dispose();
    for (const t of utility?.tensors.values() ?? []) t.dispose();
    model?.dispose();
  });

  it('gates – the served scores are the detector\'s own: the input block is hashed from the served ids', () => {
    const [x, m] = [ids(), mask()];
    try {
      const { scores } = serving.gates(x, m);
      Array.from(scores).forEach((z, i) => expect(z).toBeCloseTo(hostScores[i]!, 3));
    } finally {
      tf.dispose([x, m]);
    }
  });

  it('predict – every row gets what a one-row classify with its own gates gives: utility alone when ungated, gated adapters otherwise', () => {
    const [x, m] = [ids(), mask()];
    try {
      const tensors = tf.memory().numTensors;
      const served = serving.predict(x, m);
      expect(tf.memory().numTensors).toBe(tensors);
      const gated = Array.from({ length: batch.n }, (_, i) => served.gates[i]! > 0);
      expect(gated.some((g) => g) && gated.some((g) => !g)).toBe(true);
      for (let i = 0; i < batch.n; i++) {
        const p = tf.tidy(() => {
          const row = (t: tf.Tensor2D): tf.Tensor2D => tf.slice(t, [i, 0], [1, batch.seqLen]);
          const lora = gated[i] ? serving.adapters(served.gates.subarray(i, i + 1), 1) : utility;
          return tf.softmax(model.classify(row(x), row(m), lora));
        });
        const expected = p.dataSync();
        p.dispose();
        expect(served.probabilities[2 * i]).toBeCloseTo(expected[0]!, 5);
        expect(served.probabilities[2 * i + 1]).toBeCloseTo(expected[1]!, 5);
      }
      // The gated branch must matter, or the comparison above could not tell the two passes apart.
      const plain = tf.tidy(() => tf.softmax(model.classify(x, m, utility)));
      const plainHost = plain.dataSync();
      plain.dispose();
      const moved = gated.map((g, i) => (g ? Math.abs(plainHost[2 * i]! - served.probabilities[2 * i]!) : 0));
      expect(Math.max(...moved)).toBeGreaterThan(1e-3);
    } finally {
      tf.dispose([x, m]);
    }
  });

  it('gates – the layer-0 features equal the masked mean and std of the embedding output computed on the device', () => {
    const [x, m] = [ids(), mask()];
    const base = new BaseFeatures(model);
    try {
      const [got, want] = tf.tidy(() => {
        const [f] = base.pooled(x, m, [0], 'mean+std');
        const w = model.hostWeights();
        const c = SMALL.nEmbd;
        const wte = tf.tensor2d(w.get('wte.weight')!.data, [SMALL.vocabSize, c]);
        const wpe = tf.tensor2d(w.get('wpe.weight')!.data, [SMALL.nPositions, c]);
        const h = tf.add(tf.reshape(tf.gather(wte, tf.reshape(x, [-1])), [batch.n, batch.seqLen, c]), tf.slice(wpe, [0, 0], [batch.seqLen, c]));
        const mm = tf.expandDims(m, 2);
        const count = tf.maximum(tf.sum(m, 1, true), 1);
        const mean = tf.div(tf.sum(tf.mul(h, mm), 1), count);
        const std = tf.sqrt(tf.relu(tf.sub(tf.div(tf.sum(tf.mul(tf.square(h), mm), 1), count), tf.square(mean))));
        return [f!.dataSync(), tf.concat([mean, std], 1).dataSync()];
      });
      expect(got.length).toBe(want.length);
      for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 4);
    } finally {
      base.dispose();
      tf.dispose([x, m]);
    }
  });
});
