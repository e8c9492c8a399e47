/**
 * O3's out-of-distribution detector for one unlearning request (Gao et al. 2024 §3.3; ALGORITHMS.md §6): how much an
 * input looks like the forget data D_t, from the frozen base model's mean-pooled hidden states (features.ts).
 *
 * Per detector layer ℓ, from D_t's features: the mean μ_ℓ [C], a Ledoit–Wolf shrinkage precision P_ℓ [C, C]
 * (stats.ledoitWolf: shrinks toward a scaled identity by the estimated optimal amount), and — unless bank-free — a bank
 * of D_t's centred, L2-normalised features bank_j = (f_j − μ_ℓ)/‖f_j − μ_ℓ‖ [m, C]. Layer score:
 *   s_ℓ(x) = max_j cos(f_ℓ(x) − μ_ℓ, bank_j) − c · (f_ℓ − μ_ℓ)ᵀ P_ℓ (f_ℓ − μ_ℓ),   c = 1/C by default
 * (the Mahalanobis term is ≈ C in distribution, so c = 1/C puts both terms on the unit scale); bank-free: the cosine
 * term is dropped. The cosine is taken about μ_ℓ: mean-pooled hidden states share a large common component (every
 * input's pooled position embeddings, frequent bytes), so raw cosines between any two mails sit near 1. The layer
 * scores combine linearly, z(x) = Σ_ℓ w_ℓ s_ℓ(x) + b, with (w, b) a class-balanced,
 * ridge-regularised logistic regression of D_t against generic inputs (the paper feeds the score vector to a one-class
 * SVM; ALGORITHMS.md allows the calibrated linear combination). z is a logit: > 0 leans "from D_t". The detector also
 * reports each input's nearest bank cosine, max over layers and entries: the gate uses it to recognise the forget
 * samples themselves (gate.ts).
 *
 * What a package reveals: μ_ℓ and P_ℓ are aggregate second-order statistics of D_t's features; the bank holds every
 * forget example's feature direction (m = |D_t| vectors of C floats per layer), from which an attacker with the base
 * model can test whether a candidate text was in D_t, and may partially invert the text. Bank-free mode stores only
 * the aggregates, at some cost in AUROC, and cannot recognise the forget samples themselves.
 */
import * as tf from '@tensorflow/tfjs';
import { UnlearningError } from './errors.js';
import type { LayerFeatures } from './features.js';
import { checkLayers } from './features.js';
import { columnMeans, ledoitWolf, logisticRegression, spdInverse } from './stats.js';

export interface DetectorConfig {
  readonly layers: readonly number[] | 'all'; // base hidden states scored (0 = embeddings, ℓ = after block ℓ − 1)
  readonly bank: boolean; // keep D_t's normalised features (see the header for what that reveals)
  readonly mahalanobisWeight: number | 'inverse-dim'; // c; 'inverse-dim' = 1/C
  readonly ridge: number; // L2 penalty of the layer-combination logistic regression (standardised scores)
  readonly folds: number; // cross-fitting folds for the forget examples' calibration scores
}

export const DEFAULT_DETECTOR: DetectorConfig = Object.freeze({
  // The embedding output alone: no base forward at serving time, and on SpamAssassin with the tiny base it scored the
  // best held-out AUROC of any layer or layer set measured (e.g. easy-ham-2 vs rest 0.80 vs 0.75 for blocks 1 and 2).
  layers: [0],
  bank: true,
  mahalanobisWeight: 'inverse-dim',
  ridge: 1e-2,
  folds: 5,
});

export interface DetectorLayer {
  readonly layer: number; // hidden-state index (0 = embeddings)
  readonly mean: Float32Array; // μ_ℓ [C]
  readonly precision: Float32Array; // P_ℓ [C, C] row-major
  readonly shrinkage: number; // Ledoit–Wolf ρ ∈ [0, 1] (informational)
  readonly bank?: Float32Array; // [m, C] centred (− mean), L2-normalised forget features, absent when bank-free
}

export interface Detector {
  readonly dim: number; // C
  readonly bankSize: number; // m (0 when bank-free)
  readonly mahalanobisWeight: number; // c
  readonly layers: readonly DetectorLayer[];
  readonly weights: Float32Array; // w [L], one per detector layer
  readonly bias: number; // b
}

/** Resolves `config.layers` for a model with `nLayer` blocks. */
export function detectorLayers(config: DetectorConfig, nLayer: number): number[] {
  const layers = config.layers === 'all' ? Array.from({ length: nLayer + 1 }, (_, i) => i) : [...config.layers];
  checkLayers(layers, nLayer);
  return layers;
}

function normaliseRows(x: Float32Array, n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[i * d + k]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let k = 0; k < d; k++) out[i * d + k] = x[i * d + k]! * inv;
  }
  return out;
}

/** The detector's tensors on the device, for scoring batches of features. Dispose when done. */
export class DeviceDetector {
  private readonly layers: { mean: tf.Tensor1D; precision: tf.Tensor2D; bankT?: tf.Tensor2D }[];
  private readonly weights: tf.Tensor1D;
  private disposed = false;

  constructor(readonly detector: Detector) {
    const d = detector.dim;
    // tidy + keep: the transposed bank's source is freed, and a detector built inside a caller's tidy survives it.
    this.layers = tf.tidy(() =>
      detector.layers.map((l) => ({
        mean: tf.keep(tf.tensor1d(l.mean)),
        precision: tf.keep(tf.tensor2d(l.precision, [d, d])),
        ...(l.bank ? { bankT: tf.keep(tf.transpose(tf.tensor2d(l.bank, [l.bank.length / d, d]))) as tf.Tensor2D } : {}), // [C, m]
      })),
    );
    this.weights = tf.keep(tf.tensor1d(detector.weights));
  }

  /**
   * Layer scores [B, L] of features (one [B, C] per detector layer, in detector order) and each row's nearest bank
   * cosine [B] (max over layers and entries; −2 when bank-free). Call inside tf.tidy.
   */
  layerScores(features: readonly tf.Tensor2D[]): { scores: tf.Tensor2D; nearest: tf.Tensor1D } {
    const c = this.detector.mahalanobisWeight;
    const nearest: tf.Tensor1D[] = [];
    const scores = this.layers.map((l, k) => {
      const f = features[k]!;
      const centred = tf.sub(f, l.mean);
      const maha = tf.sum(tf.mul(tf.matMul(centred, l.precision), centred), 1); // [B]
      if (!l.bankT) return tf.mul(maha, -c);
      const cos = tf.max(tf.matMul(tf.div(centred, tf.maximum(tf.norm(centred, 2, 1, true), 1e-12)), l.bankT), 1); // [B]
      nearest.push(cos as tf.Tensor1D);
      return tf.sub(cos, tf.mul(maha, c));
    });
    const b = features[0]!.shape[0];
    return {
      scores: tf.stack(scores, 1) as tf.Tensor2D,
      nearest: (nearest.length > 0 ? tf.max(tf.stack(nearest, 1), 1) : tf.fill([b], -2)) as tf.Tensor1D,
    };
  }

  /** Combined scores z [B] (logits), from layer scores [B, L]. Call inside tf.tidy. */
  combine(layerScores: tf.Tensor2D): tf.Tensor1D {
    return tf.add(tf.sum(tf.mul(layerScores, this.weights), 1), this.detector.bias) as tf.Tensor1D;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const l of this.layers) {
      l.mean.dispose();
      l.precision.dispose();
      l.bankT?.dispose();
    }
    this.weights.dispose();
  }
}

/** Layer scores [n, L] of host features (all rows, or `rows` of them), in chunks. */
function hostLayerScores(device: DeviceDetector, feats: LayerFeatures, rows?: readonly number[]): Float64Array {
  const { dim } = feats;
  const picked = rows ?? Array.from({ length: feats.n }, (_, i) => i);
  const nl = feats.layers.length;
  const out = new Float64Array(picked.length * nl);
  const chunk = 256;
  for (let start = 0; start < picked.length; start += chunk) {
    const part = picked.slice(start, start + chunk);
    const scores = tf.tidy(() => {
      const f = feats.data.map((x) => tf.tensor2d(gatherRows(x, part, dim), [part.length, dim]));
      return device.layerScores(f).scores;
    });
    out.set(scores.dataSync(), start * nl);
    scores.dispose();
  }
  return out;
}

function gatherRows(x: Float32Array, rows: readonly number[], d: number): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => out.set(x.subarray(r * d, (r + 1) * d), i * d));
  return out;
}

/** Per-layer statistics of the forget features at `rows`. */
function fitLayers(feats: LayerFeatures, rows: readonly number[], bank: boolean): DetectorLayer[] {
  const { dim } = feats;
  return feats.layers.map((layer, k) => {
    const x = gatherRows(feats.data[k]!, rows, dim);
    const mean = columnMeans(x, rows.length, dim);
    const { cov, shrinkage } = ledoitWolf(x, rows.length, dim, mean);
    return {
      layer,
      mean: Float32Array.from(mean),
      precision: Float32Array.from(spdInverse(cov, dim)),
      shrinkage,
      ...(bank ? { bank: normaliseRows(x.map((v, i) => v - mean[i % dim]!), rows.length, dim) } : {}),
    };
  });
}

function scoreWith(detector: Detector, feats: LayerFeatures, rows?: readonly number[]): Float64Array {
  const device = new DeviceDetector(detector);
  try {
    return hostLayerScores(device, feats, rows);
  } finally {
    device.dispose();
  }
}

export interface FittedDetector {
  readonly detector: Detector;
  readonly heldInScores: Float64Array; // z of the forget examples, cross-fitted (see fitDetector)
  readonly outScores: Float64Array; // z of the generic examples
}

/**
 * Fits request t's detector on the forget features `inFeats` and calibrates its layer combination against generic
 * inputs `outFeats` (e.g. a slice of other local data or public text). Both must come from the same layers.
 *
 * The forget examples' calibration scores are cross-fitted over `folds` folds: each fold is scored by statistics and a
 * bank fitted on the other folds. Scoring an example with statistics that contain it would flatter it twice — its own
 * bank entry gives cos = 1, and with n ≈ C the in-sample Mahalanobis distance is far below a new example's — and a gate
 * calibrated on such scores would be too strict on unseen forget-like inputs.
 */
export function fitDetector(inFeats: LayerFeatures, outFeats: LayerFeatures, config: DetectorConfig = DEFAULT_DETECTOR): FittedDetector {
  const folds = config.folds;
  if (!Number.isInteger(folds) || folds < 2) throw new UnlearningError(`folds must be an integer ≥ 2, got ${folds}`, 'bad_option');
  if (inFeats.n < 2 * folds) throw new UnlearningError(`the detector needs at least ${2 * folds} forget examples (2 per fold), got ${inFeats.n}`, 'bad_data');
  if (outFeats.n < 1) throw new UnlearningError('the detector needs generic (out-of-distribution) examples to calibrate against', 'bad_data');
  if (outFeats.dim !== inFeats.dim || outFeats.layers.join() !== inFeats.layers.join()) {
    throw new UnlearningError('in- and out-of-distribution features come from different layers or widths', 'bad_data');
  }
  if (!(config.ridge > 0)) throw new UnlearningError(`ridge must be > 0, got ${config.ridge}`, 'bad_option');
  const { n, dim } = inFeats;
  const c = config.mahalanobisWeight === 'inverse-dim' ? 1 / dim : config.mahalanobisWeight;
  if (!(c >= 0) || !Number.isFinite(c)) throw new UnlearningError(`mahalanobisWeight must be finite and ≥ 0, got ${c}`, 'bad_option');
  const nl = inFeats.layers.length;
  const shell = { dim, mahalanobisWeight: c, weights: new Float32Array(nl).fill(1), bias: 0 };
  const all = Array.from({ length: n }, (_, i) => i);
  const detectorOn = (rows: readonly number[]): Detector => ({ ...shell, bankSize: config.bank ? rows.length : 0, layers: fitLayers(inFeats, rows, config.bank) });

  const full = detectorOn(all);
  const outLayer = scoreWith(full, outFeats);
  const inLayer = new Float64Array(n * nl);
  for (let f = 0; f < folds; f++) {
    const held = all.filter((i) => i % folds === f);
    const scores = scoreWith(detectorOn(all.filter((i) => i % folds !== f)), inFeats, held);
    held.forEach((row, j) => inLayer.set(scores.subarray(j * nl, (j + 1) * nl), row * nl));
  }
  // Standardise each layer score over both sets so one ridge strength suits every layer, then fold it back.
  const mu = new Float64Array(nl);
  const sd = new Float64Array(nl);
  const total = n + outFeats.n;
  for (const rows of [inLayer, outLayer]) for (let i = 0; i < rows.length; i++) mu[i % nl]! += rows[i]! / total;
  for (const rows of [inLayer, outLayer]) for (let i = 0; i < rows.length; i++) sd[i % nl]! += (rows[i]! - mu[i % nl]!) ** 2 / total;
  for (let k = 0; k < nl; k++) sd[k] = Math.sqrt(sd[k]!) || 1;
  const standardise = (rows: Float64Array): Float64Array => rows.map((v, i) => (v - mu[i % nl]!) / sd[i % nl]!);
  const fit = logisticRegression(standardise(inLayer), standardise(outLayer), nl, config.ridge);
  const weights = new Float32Array(nl);
  let bias = fit.bias;
  for (let k = 0; k < nl; k++) {
    weights[k] = fit.weights[k]! / sd[k]!;
    bias -= (fit.weights[k]! * mu[k]!) / sd[k]!;
  }
  const detector: Detector = { ...full, weights, bias };
  return {
    detector,
    heldInScores: combine(detector, inLayer),
    outScores: combine(detector, outLayer),
  };
}

/** z = Σ_ℓ w_ℓ s_ℓ + b for layer scores [n, L]. */
function combine(detector: Detector, layerScores: Float64Array): Float64Array {
  const nl = detector.layers.length;
  return Float64Array.from({ length: layerScores.length / nl }, (_, i) => {
    let z = detector.bias;
    for (let k = 0; k < nl; k++) z += detector.weights[k]! * layerScores[i * nl + k]!;
    return z;
  });
}

/** Combined detector scores z [n] of host features: for held-out evaluation. */
export function detectorScores(detector: Detector, feats: LayerFeatures): Float64Array {
  if (feats.layers.join() !== detector.layers.map((l) => l.layer).join() || feats.dim !== detector.dim) {
    throw new UnlearningError(`features of layers [${feats.layers.join(', ')}] do not match the detector's`, 'bad_data');
  }
  return combine(detector, scoreWith(detector, feats));
}
