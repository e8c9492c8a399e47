import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { encodeExamples, makeExample } from '../../src/data/index.js';
import { byteTokenizer } from '../../src/model/tokenizer.js';
import { DEFAULT_DETECTOR, fitDetector } from '../../src/unlearning/detector.js';
import { detectorScores } from '../../src/unlearning/device-detector.js';
import type { LayerFeatures } from '../../src/unlearning/features.js';
import { concatFeatures } from '../../src/unlearning/features.js';
import type { NgramSpec } from '../../src/unlearning/ngrams.js';
import { denseRows, ngramFeatures, ngramRows, sparseRows } from '../../src/unlearning/ngrams.js';
import { neighbourBank, neighbourDistances, referenceK } from '../../src/unlearning/neighbours.js';
import { auroc } from '../../src/unlearning/stats.js';

const SPEC: NgramSpec = { orders: [3, 4], buckets: 128 };
const SEQ = 64;

/** n texts of 8 words drawn from `vocab` (and a few shared words), byte-encoded to SEQ tokens. */
function texts(n: number, vocab: readonly string[], seed: string): ReturnType<typeof encodeExamples> {
  const rng = seedrandom(seed);
  const shared = ['the', 'and', 'for', 'with', 'this', 'that', 'from', 'have'];
  const pick = (words: readonly string[]): string => words[Math.floor(rng() * words.length)]!;
  return encodeExamples(
    Array.from({ length: n }, () => makeExample(Array.from({ length: 8 }, () => (rng() < 0.5 ? pick(vocab) : pick(shared))).join(' '), 0)),
    byteTokenizer(),
    SEQ,
  );
}

/** Features whose only hidden-state layer is noise, the same for every set, plus the texts' input block. */
function features(data: ReturnType<typeof encodeExamples>, seed: string): LayerFeatures {
  const rng = seedrandom(seed);
  const d = 4;
  return { n: data.n, dim: d, pooling: 'mean', layers: [0], data: [Float32Array.from({ length: data.n * d }, () => rng() - 0.5)], input: { spec: SPEC, data: ngramFeatures(data, SPEC) } };
}

const FORGET = ['invoice', 'payment', 'wire', 'transfer', 'account', 'refund'];
const GENERIC = ['meeting', 'lunch', 'tomorrow', 'project', 'review', 'weekend'];

describe('unlearning input block (hashed n-grams)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('ngrams – each row is √ of its n-gram frequencies (unit norm), pads are ignored, the same text hashes the same', () => {
    // Arrange: "abcdef" padded to 10 tokens, and the same text again
    const ids = Int32Array.from([97, 98, 99, 100, 101, 102, 256, 256, 256, 256, 97, 98, 99, 100, 101, 102, 256, 256, 256, 256]);
    const mask = Float32Array.from({ length: 20 }, (_, i) => (i % 10 < 6 ? 1 : 0));

    // Act
    const rows = ngramRows(ids, mask, 2, 10, SPEC);

    // Assert: 4 trigrams + 3 four-grams = 7 n-grams
    const row = (i: number): number[] => Array.from(rows.value.subarray(rows.offsets[i]!, rows.offsets[i + 1]!));
    expect(row(0).reduce((s, v) => s + v * v, 0)).toBeCloseTo(1, 6);
    expect(row(0)).toEqual(row(1));
    expect(rows.offsets[1]).toBeLessThanOrEqual(7);
    expect(row(0).every((v) => v >= Math.sqrt(1 / 7) - 1e-7)).toBe(true);
    expect(denseRows(sparseRows(denseRows(rows), 2, SPEC.buckets))).toEqual(denseRows(rows));
  });

  it('ngrams – the input block separates a forget set that uses other words where a noise layer cannot', () => {
    // Arrange
    const [forget, generic] = [features(texts(80, FORGET, 'in'), 'n1'), features(texts(120, GENERIC, 'out'), 'n2')];
    const [heldOut, retained] = [features(texts(60, FORGET, 'in-test'), 'n3'), features(texts(60, GENERIC, 'out-test'), 'n4')];
    const layerOnly = (f: LayerFeatures): LayerFeatures => ({ n: f.n, dim: f.dim, pooling: f.pooling, layers: f.layers, data: f.data });

    // Act
    const withInput = fitDetector(forget, generic, DEFAULT_DETECTOR).detector;
    const without = fitDetector(layerOnly(forget), layerOnly(generic), DEFAULT_DETECTOR).detector;
    const separation = (d: typeof without, strip: boolean): number => {
      const f = (x: LayerFeatures): LayerFeatures => (strip ? layerOnly(x) : x);
      return auroc(detectorScores(d, f(heldOut)).scores, detectorScores(d, f(retained)).scores);
    };

    // Assert
    expect(withInput.input?.ngrams).toEqual(SPEC);
    expect(withInput.weights).toHaveLength(4); // (d_in, d_out) for the layer, then for the input block
    expect(separation(withInput, false)).toBeGreaterThan(0.95);
    expect(separation(without, true)).toBeLessThan(0.7);
    expect(tf.memory().numTensors).toBe(0);
  });

  it('ngrams – served (sparse) scores equal the fit\'s dense ones, Gaussian or neighbours; features without the detector\'s input block are refused', () => {
    // Arrange
    const forget = features(texts(40, FORGET, 'a'), 'm1');
    const generic = concatFeatures(features(texts(30, GENERIC, 'b'), 'm2'), features(texts(30, FORGET.concat(GENERIC), 'c'), 'm3'));

    for (const neighbours of [0, 5]) {
      // Act: without a reference the generic inputs are scored by the full statistics in both paths
      const fitted = fitDetector(forget, generic, { ...DEFAULT_DETECTOR, reference: false, neighbours });
      const served = detectorScores(fitted.detector, generic);

      // Assert
      expect(fitted.detector.input?.kind).toBe(neighbours > 0 ? 'neighbours' : 'gaussian');
      served.scores.forEach((z, i) => expect(z).toBeCloseTo(fitted.out.scores[i]!, 3));
    }
    const fitted = fitDetector(forget, generic, { ...DEFAULT_DETECTOR, reference: false });
    expect(() => detectorScores(fitted.detector, { ...generic, input: undefined })).toThrow(/input block do not match/);
    expect(() => fitDetector(forget, { ...generic, input: { spec: { ...SPEC, buckets: 64 }, data: new Float32Array(60 * 64) } })).toThrow(/same input block/);
    expect(() => fitDetector(forget, generic, { ...DEFAULT_DETECTOR, bank: false })).toThrow(/needs bank: true, or neighbours: 0/);
  });

  it('ngrams – the default detector serves z = d_out − d_in of its neighbour block alone, the layers left out of z', () => {
    const forget = features(texts(40, FORGET, 'a'), 'm1');
    const generic = features(texts(60, GENERIC, 'b'), 'm2');
    const probe = features(texts(12, FORGET.concat(GENERIC), 'p'), 'm3');

    const { detector } = fitDetector(forget, generic);
    const served = detectorScores(detector, probe).scores;

    const w = SPEC.buckets;
    const rows = sparseRows(probe.input!.data, probe.n, w);
    const dIn = neighbourDistances(neighbourBank(forget.input!.data, 40, w), rows, 5);
    const dOut = neighbourDistances(neighbourBank(generic.input!.data, 60, w), rows, referenceK(5, 40, 60));
    served.forEach((z, i) => expect(z).toBeCloseTo(dOut[i]! - dIn[i]!, 5));
  });

  it('ngrams – a neighbour bank keeps at most neighbourRows rows, spread over its set; the layers\' bank keeps them all', () => {
    const forget = features(texts(40, FORGET, 'a'), 'm1');
    const generic = features(texts(60, GENERIC, 'b'), 'm2');

    const { detector } = fitDetector(forget, generic, { ...DEFAULT_DETECTOR, neighbourRows: 20 });

    const input = detector.input!;
    if (input.kind !== 'neighbours') throw new Error('expected a neighbour block');
    const w = SPEC.buckets;
    expect(input.bank).toEqual(forget.input!.data.filter((_, i) => Math.floor(i / w) % 2 === 0)); // rows 0, 2, …, 38
    expect(input.reference!.bank.length / w).toBe(20);
    expect(input.reference!.bank.subarray(w, 2 * w)).toEqual(generic.input!.data.subarray(3 * w, 4 * w)); // row ⌊1·60/20⌋
    expect(detector.bankSize).toBe(40);
    expect(() => fitDetector(forget, generic, { ...DEFAULT_DETECTOR, neighbourRows: 0 })).toThrow(/neighbourRows must be an integer ≥ 1/);
  });
});
