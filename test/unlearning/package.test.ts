import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import type { GPT2Config } from '../../src/model/gpt2.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/tensors/safetensors.js';
import { UNLEARNING_LORA, initUnlearningAdapter } from '../../src/unlearning/adapter.js';
import { DEFAULT_DETECTOR, fitDetector } from '../../src/unlearning/detector.js';
import { PackageError } from '../../src/unlearning/errors.js';
import type { LayerFeatures } from '../../src/unlearning/features.js';
import { calibrateGate } from '../../src/unlearning/gate.js';
import type { UnlearningPackage } from '../../src/unlearning/package.js';
import { decodeUnlearningPackage, encodeUnlearningPackage } from '../../src/unlearning/package.js';

const MODEL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 16, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });
const LORA = { ...UNLEARNING_LORA, r: 2 };

function features(n: number, shift: number, seed: string): LayerFeatures {
  const rng = seedrandom(seed);
  const d = MODEL.nEmbd;
  const layer = (): Float32Array => Float32Array.from({ length: n * d }, (_, i) => rng() - 0.5 + (i % d === 0 ? shift : 0));
  return { n, dim: d, pooling: 'mean', layers: [0, 1], data: [layer(), layer()] };
}

/** Re-encodes a package with one tensor or the metadata replaced. */
function tamper(bytes: Uint8Array, edit: (tensors: Map<string, HostTensor>, meta: Record<string, string>) => void): Uint8Array {
  const { tensors, metadata } = decodeSafetensors(bytes);
  edit(tensors, metadata);
  return encodeSafetensors(tensors, metadata);
}

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PackageError);
    return (err as PackageError).code;
  }
  throw new Error('expected a PackageError');
};

describe('unlearning package', () => {
  let pkg: UnlearningPackage;
  let bytes: Uint8Array;

  beforeAll(async () => {
    await initBackend('cpu');
    const fitted = fitDetector(features(40, 2, 'in'), features(60, 0, 'out'));
    pkg = {
      index: 1,
      lora: LORA,
      adapter: initUnlearningAdapter(MODEL, LORA, []),
      detector: fitted.detector,
      gate: calibrateGate(fitted.heldIn, fitted.out),
      metrics: { max_overlap: 0, calibration_auroc: 1 },
    };
    bytes = encodeUnlearningPackage(pkg, MODEL);
  });

  it('package – round-trips adapter, detector, gate and metrics bit for bit', () => {
    const back = decodeUnlearningPackage(bytes, { model: MODEL });
    expect(back.index).toBe(1);
    expect(back.lora).toEqual(pkg.lora);
    expect(back.gate).toEqual(pkg.gate);
    expect(back.metrics).toEqual(pkg.metrics);
    expect([...back.adapter.keys()].sort()).toEqual([...pkg.adapter.keys()].sort());
    for (const [name, t] of pkg.adapter) expect(back.adapter.get(name)!.data).toEqual(t.data);
    expect(back.detector.bias).toBe(pkg.detector.bias);
    expect(back.detector.weights).toEqual(pkg.detector.weights);
    back.detector.layers.forEach((l, k) => {
      const want = pkg.detector.layers[k]!;
      expect(l.layer).toBe(want.layer);
      expect(l.mean).toEqual(want.mean);
      expect(l.precision).toEqual(want.precision);
      expect(l.bank).toEqual(want.bank);
      expect(l.reference).toEqual(want.reference);
    });
    expect(tf.memory().numTensors).toBe(0);
  });

  it('package – a bank-free detector travels without bank tensors', () => {
    const fitted = fitDetector(features(40, 2, 'in'), features(60, 0, 'out'), { ...DEFAULT_DETECTOR, layers: 'all', bank: false });
    const free = encodeUnlearningPackage({ ...pkg, detector: fitted.detector }, MODEL);
    expect([...decodeSafetensors(free).tensors.keys()].some((n) => n.includes('bank'))).toBe(false);
    const back = decodeUnlearningPackage(free, { model: MODEL });
    expect(back.detector.bankSize).toBe(0);
    expect(back.detector.layers.every((l) => l.bank === undefined)).toBe(true);
  });

  it('package – rejects bytes that are not a package (bad_format) and a future format (bad_version)', () => {
    expect(codeOf(() => decodeUnlearningPackage(new Uint8Array([1, 2, 3]), { model: MODEL }))).toBe('bad_format');
    expect(codeOf(() => decodeUnlearningPackage(encodeSafetensors(new Map()), { model: MODEL }))).toBe('bad_format');
    const future = tamper(bytes, (_, meta) => {
      meta['lethe.unlearning'] = JSON.stringify({ ...JSON.parse(meta['lethe.unlearning']!), format: 99 });
    });
    expect(codeOf(() => decodeUnlearningPackage(future, { model: MODEL }))).toBe('bad_version');
  });

  it('package – is written in the oldest format that holds it; a format 2 package still loads; the pooling format 3 added is refused under format 2 (bad_format)', () => {
    // Arrange: this package's detector pools `mean`, which format 2 knew; a mean+std+max+min detector needs format 3
    const asFormat = (b: Uint8Array, format: number): Uint8Array =>
      tamper(b, (_, meta) => {
        meta['lethe.unlearning'] = JSON.stringify({ ...JSON.parse(meta['lethe.unlearning']!), format });
      });
    const wide = (n: number, shift: number, seed: string): LayerFeatures => {
      const f = features(n, shift, seed);
      const d = 4 * MODEL.nEmbd;
      return { ...f, dim: d, pooling: 'mean+std+max+min', data: f.data.map((x) => Float32Array.from({ length: n * d }, (_, i) => x[(i * 7) % x.length]! + ((i % d) % 5) * 0.1)) };
    };
    const fitted = fitDetector(wide(40, 2, 'in'), wide(60, 0, 'out'), { ...DEFAULT_DETECTOR, layers: [0, 1] });
    const rich = encodeUnlearningPackage({ ...pkg, detector: fitted.detector }, MODEL);

    const formatOf = (b: Uint8Array): number => (JSON.parse(decodeSafetensors(b).metadata['lethe.unlearning']!) as { format: number }).format;

    // Act
    const old = decodeUnlearningPackage(asFormat(bytes, 2), { model: MODEL });
    const back = decodeUnlearningPackage(rich, { model: MODEL });

    // Assert: each package is written in the oldest format that holds it
    expect(formatOf(bytes)).toBe(2);
    expect(formatOf(rich)).toBe(3);
    expect(old.detector.pooling).toBe('mean');
    expect(old.detector.layers[0]!.mean).toEqual(pkg.detector.layers[0]!.mean);
    expect(back.detector.pooling).toBe('mean+std+max+min');
    expect(back.detector.layers[1]!.precision).toEqual(fitted.detector.layers[1]!.precision);
    expect(codeOf(() => decodeUnlearningPackage(asFormat(rich, 2), { model: MODEL }))).toBe('bad_format');
    expect(() => decodeUnlearningPackage(asFormat(bytes, 1), { model: MODEL })).toThrow(/format 1 is not supported \(this build reads 2, 3, 4 and 5\); rebuild/);
  });

  const spec = { orders: [3, 4], buckets: 32 };
  /** features(...) plus a random input block of 32 buckets. */
  const withInput = (n: number, shift: number, seed: string): LayerFeatures => {
    const rng = seedrandom(`${seed}:input`);
    return { ...features(n, shift, seed), input: { spec, data: Float32Array.from({ length: n * 32 }, (_, i) => rng() + (i % 32 === 0 ? shift : 0)) } };
  };
  const meta = (b: Uint8Array): { format: number } => JSON.parse(decodeSafetensors(b).metadata['lethe.unlearning']!) as { format: number };
  const asFormat = (b: Uint8Array, format: number): Uint8Array =>
    tamper(b, (_, m) => {
      m['lethe.unlearning'] = JSON.stringify({ ...JSON.parse(m['lethe.unlearning']!), format });
    });

  it('package – a detector with a Gaussian input block travels as format 4 and round-trips; format 3 refuses it (bad_format)', () => {
    const fitted = fitDetector(withInput(40, 2, 'in'), withInput(60, 0, 'out'), { ...DEFAULT_DETECTOR, neighbours: 0 });
    const blocky = encodeUnlearningPackage({ ...pkg, detector: fitted.detector }, MODEL);

    // Act
    const back = decodeUnlearningPackage(blocky, { model: MODEL });

    // Assert
    expect(meta(blocky).format).toBe(4);
    expect(back.detector.input).toEqual(fitted.detector.input);
    expect(back.detector.input!.kind).toBe('gaussian');
    expect(back.detector.weights).toEqual(fitted.detector.weights);
    expect(back.detector.weights).toHaveLength(6); // (d_in, d_out) × (2 layers + the input block)
    expect(codeOf(() => decodeUnlearningPackage(asFormat(blocky, 3), { model: MODEL }))).toBe('bad_format');
    const noInputMean = tamper(blocky, (t) => t.delete('detector.input.mean'));
    expect(codeOf(() => decodeUnlearningPackage(noInputMean, { model: MODEL }))).toBe('bad_shape');
  });

  it('package – a neighbour input block travels as format 5 with both banks and round-trips; format 4 refuses it, a missing bank is bad_shape, a bad k bad_format', () => {
    const fitted = fitDetector(withInput(40, 2, 'in'), withInput(60, 0, 'out'));
    const banked = encodeUnlearningPackage({ ...pkg, detector: fitted.detector }, MODEL);

    const back = decodeUnlearningPackage(banked, { model: MODEL });

    expect(meta(banked).format).toBe(5);
    expect(back.detector.input).toEqual(fitted.detector.input);
    expect(back.detector.input).toMatchObject({ kind: 'neighbours', k: DEFAULT_DETECTOR.neighbours });
    expect(decodeSafetensors(banked).tensors.get('detector.input.bank')!.shape).toEqual([40, 32]);
    expect(decodeSafetensors(banked).tensors.get('detector.input.reference_bank')!.shape).toEqual([60, 32]);
    expect(codeOf(() => decodeUnlearningPackage(asFormat(banked, 4), { model: MODEL }))).toBe('bad_format');
    expect(codeOf(() => decodeUnlearningPackage(tamper(banked, (t) => t.delete('detector.input.reference_bank')), { model: MODEL }))).toBe('bad_shape');
    const zeroK = tamper(banked, (_, m) => {
      m['lethe.unlearning'] = m['lethe.unlearning']!.replace(/"neighbours":\d+/, '"neighbours":0');
    });
    expect(codeOf(() => decodeUnlearningPackage(zeroK, { model: MODEL }))).toBe('bad_format');
  });

  it('package – rejects a mis-shaped or missing tensor (bad_shape) and another base (wrong_model)', () => {
    const shrunk = tamper(bytes, (t) => {
      t.set('h.0.attn.c_attn.lora_A.weight', { shape: [2, 8], data: new Float32Array(16) });
    });
    expect(codeOf(() => decodeUnlearningPackage(shrunk, { model: MODEL }))).toBe('bad_shape');
    const noMean = tamper(bytes, (t) => t.delete('detector.1.mean'));
    expect(codeOf(() => decodeUnlearningPackage(noMean, { model: MODEL }))).toBe('bad_shape');
    expect(codeOf(() => decodeUnlearningPackage(bytes, { model: { ...MODEL, nLayer: 3 } }))).toBe('wrong_model');
  });

  it('package – rejects NaN in a tensor or a gate parameter (non_finite)', () => {
    const nanTensor = tamper(bytes, (t) => {
      const p = t.get('detector.0.precision')!;
      const data = p.data.slice();
      data[3] = Number.NaN;
      t.set('detector.0.precision', { shape: p.shape, data });
    });
    expect(codeOf(() => decodeUnlearningPackage(nanTensor, { model: MODEL }))).toBe('non_finite');
    const nanGate = tamper(bytes, (_, meta) => {
      meta['lethe.unlearning'] = meta['lethe.unlearning']!.replace(/"slope":[^,}]+/, '"slope":null');
    });
    expect(codeOf(() => decodeUnlearningPackage(nanGate, { model: MODEL }))).toBe('non_finite');
  });

  it('package – rejects an adapter that overlaps an earlier request beyond the threshold (not_orthogonal)', () => {
    const prior = initUnlearningAdapter(MODEL, LORA, []); // the same A as request 1: full overlap
    expect(codeOf(() => decodeUnlearningPackage(bytes, { model: MODEL, priors: [prior] }))).toBe('not_orthogonal');
    const orthogonalPrior = initUnlearningAdapter(MODEL, LORA, [pkg.adapter]);
    expect(decodeUnlearningPackage(bytes, { model: MODEL, priors: [orthogonalPrior] }).index).toBe(1);
  });
});
