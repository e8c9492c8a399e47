/**
 * O3's out-of-distribution detector for one unlearning request (Gao et al. 2024 §3.3; ALGORITHMS.md §6): how much an
 * input looks like the forget data D_t, from the frozen base model's pooled hidden states f_ℓ(x) [F] (features.ts).
 *
 * Per detector layer ℓ, from D_t's features: the mean μ_ℓ, a Ledoit–Wolf shrinkage precision P_ℓ (stats.ledoitWolf:
 * shrinks toward a scaled identity by the estimated optimal amount) and — unless bank-free — a bank of D_t's centred,
 * L2-normalised features. With `reference` (the default), also the mean ν_ℓ and shrinkage precision Q_ℓ of the generic
 * inputs the gate is calibrated against. The layer's score components are the two Mahalanobis distances
 *   d_in,ℓ(x) = (f − μ)ᵀ P (f − μ) / F,   d_out,ℓ(x) = (f − ν)ᵀ Q (f − ν) / F,
 * and the detector's logit is their linear combination z(x) = Σ_ℓ (a_ℓ d_in,ℓ + b_ℓ d_out,ℓ) + c: by default
 * (`difference`) a_ℓ = −1/L, b_ℓ = 1/L, c = 0, the gate's calibration supplying the threshold; or (`logistic`) a
 * class-balanced, ridge-regularised logistic regression of D_t against the generic inputs (the paper feeds per-layer
 * scores to a one-class SVM; ALGORITHMS.md allows a calibrated linear combination). The difference is the relative
 * Mahalanobis distance (Ren et al. 2021, "A simple fix to Mahalanobis distance for improving near-OOD
 * detection"): how much closer x is to D_t than to ordinary inputs. Plain d_in alone flags any unusual text as
 * forget-like; on SpamAssassin with the tiny base it reached a held-out AUROC of 0.63 for hard-ham-1, the relative
 * form 0.87 (mean+std pooling; 0.88 with max and min too, BENCHMARKS.md). z > 0 leans "from D_t".
 *
 * The gate also bounds d_in (the support check, gate.ts): a relative score can favour a text far from both D_t and
 * the generic inputs, so inputs farther from D_t than its own held-out members never get its adapter. That alone let
 * short unrelated sentences through next to a mail forget set; the requests therefore add public-text snippets to the
 * generic inputs (public-text.ts), so ordinary prose of every length is part of the reference model.
 *
 * The bank's cosine does not enter z: it is reported separately as each input's nearest centred bank cosine, with
 * which the gate recognises the forget samples themselves (gate.ts); on unseen inputs it separated worse than either
 * distance.
 *
 * Serving cost: z is a quadratic form in f, so the device copy folds each layer into one matrix,
 *   z = Σ_ℓ fᵀ M_ℓ f + m_ℓᵀ f + k,   M_ℓ = (a P + b Q)/F,  m_ℓ = −2(a P μ + b Q ν)/F,
 * one [B, F]·[F, F] product per layer whatever the number of components.
 *
 * What a package reveals: μ, P (and ν, Q) are aggregate second-order statistics of D_t's (and of the client's other
 * data's) features; the bank holds every forget example's feature direction (m = |D_t| vectors per layer), from which
 * an attacker with the base model can test whether a candidate text was in D_t, and may partially invert the text.
 * Bank-free mode stores only the aggregates, at no cost in AUROC (z never uses the bank), but cannot recognise the
 * forget samples themselves.
 */
import * as tf from '@tensorflow/tfjs';
import { UnlearningError } from './errors.js';
import type { LayerFeatures, Pooling } from './features.js';
import { checkLayers } from './features.js';
import { columnMeans, ledoitWolf, logisticRegression, spdInverse } from './stats.js';

export interface DetectorConfig {
  readonly layers: readonly number[] | 'all'; // base hidden states scored (0 = embeddings, ℓ = after block ℓ − 1)
  readonly pooling: Pooling; // how a layer's tokens become one feature vector (features.ts)
  readonly reference: boolean; // also model the generic inputs (relative Mahalanobis; see the header)
  readonly bank: boolean; // keep D_t's normalised features (see the header for what that reveals)
  readonly combination: 'logistic' | 'difference'; // how components become z: fitted weights, or Σ_ℓ (d_out − d_in)/L
  readonly ridge: number; // L2 penalty of the component-combination logistic regression (standardised components)
  readonly folds: number; // cross-fitting folds for the calibration scores
}

export const DEFAULT_DETECTOR: DetectorConfig = Object.freeze({
  // The embedding output alone: no second base forward at serving time (a deeper layer of the frozen base costs one,
  // since the served forward runs with adapters). Pooled mean+std, relative: held-out AUROC on SpamAssassin with the
  // tiny base 0.82–0.89 per group at 128 tokens (mean 0.85), against 0.54–0.75 for the mean-pooled plain Mahalanobis
  // distance. mean+std+max+min reaches 0.81–0.89 (mean 0.86; hard-ham-1 0.88), and on every layer ('all') 0.87–0.92
  // (mean 0.89) for a second base forward per served batch — but with max and min the gate let unrelated short text through
  // in the e2e test (a small forget set, a random base), so they stay an option (BENCHMARKS.md, Unlearning).
  layers: [0],
  pooling: 'mean+std',
  reference: true,
  bank: true,
  // The plain relative distance beat the fitted combination on every SpamAssassin group (0.82–0.89 against
  // 0.78–0.84 held-out AUROC): with two components the regression mostly fits the calibration split's quirks.
  combination: 'difference',
  ridge: 1e-2,
  folds: 5,
});

/** A Gaussian model of one set of features: mean [F], shrinkage precision [F, F] row-major, Ledoit–Wolf ρ. */
export interface GaussianStats {
  readonly mean: Float32Array;
  readonly precision: Float32Array;
  readonly shrinkage: number; // ρ ∈ [0, 1] (informational)
}

export interface DetectorLayer extends GaussianStats {
  readonly layer: number; // hidden-state index (0 = embeddings)
  readonly bank?: Float32Array; // [m, F] centred (− mean), L2-normalised forget features, absent when bank-free
  readonly reference?: GaussianStats; // the generic inputs' model, when the detector is relative
}

export interface Detector {
  readonly dim: number; // F
  readonly pooling: Pooling;
  readonly bankSize: number; // m (0 when bank-free)
  readonly layers: readonly DetectorLayer[]; // all with a reference, or none
  readonly weights: Float32Array; // [L·K]: per layer (a_ℓ) or (a_ℓ, b_ℓ); K = 2 with a reference, else 1
  readonly bias: number; // c
}

/** Components per layer: 2 with a reference model (d_in, d_out), else 1 (d_in). */
export function componentsPerLayer(detector: Pick<Detector, 'layers'>): number {
  return detector.layers[0]?.reference ? 2 : 1;
}

/** Resolves `config.layers` for a model with `nLayer` blocks. */
export function detectorLayers(config: DetectorConfig, nLayer: number): number[] {
  const layers = config.layers === 'all' ? Array.from({ length: nLayer + 1 }, (_, i) => i) : [...config.layers];
  checkLayers(layers, nLayer);
  return layers;
}

function gaussian(x: Float32Array, n: number, d: number): GaussianStats & { mean64: Float64Array } {
  const mean = columnMeans(x, n, d);
  const { cov, shrinkage } = ledoitWolf(x, n, d, mean);
  return { mean: Float32Array.from(mean), mean64: mean, precision: Float32Array.from(spdInverse(cov, d)), shrinkage };
}

function gatherRows(x: Float32Array, rows: readonly number[], d: number): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => out.set(x.subarray(r * d, (r + 1) * d), i * d));
  return out;
}

function normaliseCentred(x: Float32Array, n: number, d: number, mean: Float64Array): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += (x[i * d + k]! - mean[k]!) ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let k = 0; k < d; k++) out[i * d + k] = (x[i * d + k]! - mean[k]!) * inv;
  }
  return out;
}

/** Per-layer statistics of the forget features at `inRows` (and the generic ones at `outRows`, for a reference). */
function fitLayers(inFeats: LayerFeatures, inRows: readonly number[], outFeats: LayerFeatures, outRows: readonly number[], config: DetectorConfig): DetectorLayer[] {
  const d = inFeats.dim;
  return inFeats.layers.map((layer, k) => {
    const x = gatherRows(inFeats.data[k]!, inRows, d);
    const { mean64, ...stats } = gaussian(x, inRows.length, d);
    let reference: GaussianStats | undefined;
    if (config.reference) {
      const { mean64: _unused, ...ref } = gaussian(gatherRows(outFeats.data[k]!, outRows, d), outRows.length, d);
      reference = ref;
    }
    return {
      layer,
      ...stats,
      ...(config.bank ? { bank: normaliseCentred(x, inRows.length, d, mean64) } : {}),
      ...(reference ? { reference } : {}),
    };
  });
}

/** (f − μ)ᵀ P (f − μ) / F for one row f. */
function distance(f: Float32Array, g: GaussianStats, d: number): number {
  const c = new Float64Array(d);
  for (let k = 0; k < d; k++) c[k] = f[k]! - g.mean[k]!;
  let s = 0;
  for (let a = 0; a < d; a++) {
    let t = 0;
    const row = a * d;
    for (let b = 0; b < d; b++) t += g.precision[row + b]! * c[b]!;
    s += t * c[a]!;
  }
  return s / d;
}

/** Score components [rows.length, L·K] of `feats` at `rows` under `layers` (host, float64). */
function components(layers: readonly DetectorLayer[], feats: LayerFeatures, rows: readonly number[]): Float64Array {
  const d = feats.dim;
  const k = layers[0]?.reference ? 2 : 1;
  const width = layers.length * k;
  const out = new Float64Array(rows.length * width);
  rows.forEach((r, i) => {
    layers.forEach((l, j) => {
      const f = feats.data[j]!.subarray(r * d, (r + 1) * d);
      out[i * width + j * k] = distance(f, l, d);
      if (l.reference) out[i * width + j * k + 1] = distance(f, l.reference, d);
    });
  });
  return out;
}

function folded(n: number, folds: number): number[][] {
  return Array.from({ length: folds }, (_, f) => Array.from({ length: n }, (_, i) => i).filter((i) => i % folds === f));
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Detector outputs for a set of examples: the logits z and the support distances (mean over layers of d_in). */
export interface ScoredSet {
  readonly scores: Float64Array;
  readonly distances: Float64Array;
}

export interface FittedDetector {
  readonly detector: Detector;
  readonly heldIn: ScoredSet; // the forget examples, cross-fitted (see fitDetector)
  readonly out: ScoredSet; // the generic examples, cross-fitted when the detector has a reference
}

/**
 * Fits request t's detector on the forget features `inFeats` and calibrates its combination against generic inputs
 * `outFeats` (e.g. the client's other local data). Both must come from the same layers and pooling.
 *
 * Calibration scores are cross-fitted over `folds` folds: each fold of the forget examples is scored by statistics
 * fitted on the other folds (and likewise the generic examples, when they have a model of their own). Scoring an
 * example with statistics that contain it flatters it — with n ≈ F the in-sample Mahalanobis distance is far below a
 * new example's — and a combination and gate calibrated on such scores would misjudge unseen inputs.
 */
export function fitDetector(inFeats: LayerFeatures, outFeats: LayerFeatures, config: DetectorConfig = DEFAULT_DETECTOR): FittedDetector {
  const folds = config.folds;
  if (!Number.isInteger(folds) || folds < 2) throw new UnlearningError(`folds must be an integer ≥ 2, got ${folds}`, 'bad_option');
  if (inFeats.n < 2 * folds) throw new UnlearningError(`the detector needs at least ${2 * folds} forget examples (2 per fold), got ${inFeats.n}`, 'bad_data');
  if (outFeats.n < 2 * folds) throw new UnlearningError(`the detector needs at least ${2 * folds} generic examples (2 per fold), got ${outFeats.n}`, 'bad_data');
  if (inFeats.layers.join() !== outFeats.layers.join() || inFeats.dim !== outFeats.dim || inFeats.pooling !== outFeats.pooling) {
    throw new UnlearningError('forget and generic features must come from the same layers and pooling', 'bad_data');
  }
  const allIn = range(inFeats.n);
  const allOut = range(outFeats.n);
  const full = fitLayers(inFeats, allIn, outFeats, allOut, config);
  const k = componentsPerLayer({ layers: full });
  const width = full.length * k;

  const inComp = new Float64Array(inFeats.n * width);
  for (const held of folded(inFeats.n, folds)) {
    const rest = allIn.filter((i) => !held.includes(i));
    const part = components(fitLayers(inFeats, rest, outFeats, allOut, config), inFeats, held);
    held.forEach((row, i) => inComp.set(part.subarray(i * width, (i + 1) * width), row * width));
  }
  let outComp: Float64Array;
  if (config.reference) {
    outComp = new Float64Array(outFeats.n * width);
    for (const held of folded(outFeats.n, folds)) {
      const rest = allOut.filter((i) => !held.includes(i));
      const part = components(fitLayers(inFeats, allIn, outFeats, rest, { ...config, bank: false }), outFeats, held);
      held.forEach((row, i) => outComp.set(part.subarray(i * width, (i + 1) * width), row * width));
    }
  } else {
    outComp = components(full, outFeats, allOut);
  }

  // Logistic regression on standardised components (pooled over both classes), mapped back to raw ones.
  const total = inFeats.n + outFeats.n;
  const mu = new Float64Array(width);
  const sd = new Float64Array(width);
  for (const rows of [inComp, outComp]) for (let i = 0; i < rows.length; i++) mu[i % width]! += rows[i]! / total;
  for (const rows of [inComp, outComp]) for (let i = 0; i < rows.length; i++) sd[i % width]! += (rows[i]! - mu[i % width]!) ** 2 / total;
  for (let j = 0; j < width; j++) sd[j] = Math.sqrt(sd[j]!) || 1;
  const standardise = (rows: Float64Array): Float64Array => rows.map((v, i) => (v - mu[i % width]!) / sd[i % width]!);
  const weights = new Float32Array(width);
  let bias = 0;
  if (config.combination === 'difference' && k === 2) {
    for (let j = 0; j < full.length; j++) [weights[2 * j], weights[2 * j + 1]] = [-1 / full.length, 1 / full.length];
  } else {
    const fit = logisticRegression(standardise(inComp), standardise(outComp), width, config.ridge);
    bias = fit.bias;
    for (let j = 0; j < width; j++) {
      weights[j] = fit.weights[j]! / sd[j]!;
      bias -= (fit.weights[j]! * mu[j]!) / sd[j]!;
    }
  }
  const detector: Detector = { dim: inFeats.dim, pooling: inFeats.pooling, bankSize: config.bank ? inFeats.n : 0, layers: full, weights, bias };
  return {
    detector,
    heldIn: { scores: combine(detector, inComp), distances: inDistances(inComp, full.length, k) },
    out: { scores: combine(detector, outComp), distances: inDistances(outComp, full.length, k) },
  };
}

/** The support distance of each row of components [n, L·K]: the mean over layers of d_in. */
function inDistances(comp: Float64Array, layers: number, k: number): Float64Array {
  const width = layers * k;
  return Float64Array.from({ length: comp.length / width }, (_, i) => {
    let s = 0;
    for (let j = 0; j < layers; j++) s += comp[i * width + j * k]!;
    return s / layers;
  });
}

/** z = Σ_j w_j component_j + c for components [n, L·K]. */
function combine(detector: Detector, comp: Float64Array): Float64Array {
  const width = detector.weights.length;
  return Float64Array.from({ length: comp.length / width }, (_, i) => {
    let z = detector.bias;
    for (let j = 0; j < width; j++) z += detector.weights[j]! * comp[i * width + j]!;
    return z;
  });
}

/** Logits z [n] and support distances [n] of host features, computed as served (DeviceDetector): for evaluation. */
export function detectorScores(detector: Detector, feats: LayerFeatures): ScoredSet {
  if (feats.layers.join() !== detector.layers.map((l) => l.layer).join() || feats.dim !== detector.dim || feats.pooling !== detector.pooling) {
    throw new UnlearningError(`features of layers [${feats.layers.join(', ')}] (${feats.pooling}) do not match the detector's`, 'bad_data');
  }
  const device = new DeviceDetector(detector);
  const scores = new Float64Array(feats.n);
  const distances = new Float64Array(feats.n);
  const chunk = 256;
  try {
    for (let start = 0; start < feats.n; start += chunk) {
      const n = Math.min(chunk, feats.n - start);
      const [z, dist] = tf.tidy(() => {
        const r = device.score(feats.data.map((x) => tf.tensor2d(x.subarray(start * feats.dim, (start + n) * feats.dim), [n, feats.dim])));
        return [r.z, r.distance];
      });
      scores.set(z.dataSync(), start);
      distances.set(dist.dataSync(), start);
      tf.dispose([z, dist]);
    }
  } finally {
    device.dispose();
  }
  return { scores, distances };
}

/** The detector folded for serving (see the header): per layer M [F, F], m [F], plus the bank. Dispose when done. */
export class DeviceDetector {
  private readonly layers: { quad: tf.Tensor2D; linear: tf.Tensor2D; mean: tf.Tensor1D; precision: tf.Tensor2D; bankT?: tf.Tensor2D }[];
  private readonly constant: number;
  private disposed = false;

  constructor(readonly detector: Detector) {
    const d = detector.dim;
    const k = componentsPerLayer(detector);
    let constant = detector.bias;
    const host = detector.layers.map((l, j) => {
      const parts: [GaussianStats, number][] = [[l, detector.weights[j * k]!]];
      if (l.reference) parts.push([l.reference, detector.weights[j * k + 1]!]);
      const quad = new Float32Array(d * d);
      const linear = new Float32Array(d);
      for (const [g, w] of parts) {
        const pm = new Float64Array(d); // P μ
        for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) pm[a]! += g.precision[a * d + b]! * g.mean[b]!;
        for (let i = 0; i < d * d; i++) quad[i]! += (w * g.precision[i]!) / d;
        for (let a = 0; a < d; a++) {
          linear[a]! += (-2 * w * pm[a]!) / d;
          constant += (w * g.mean[a]! * pm[a]!) / d;
        }
      }
      return { quad, linear, mean: l.mean, precision: l.precision, bank: l.bank };
    });
    this.constant = constant;
    // tidy + keep: the transposed bank's source is freed, and a detector built inside a caller's tidy survives it.
    this.layers = tf.tidy(() =>
      host.map((h) => ({
        quad: tf.keep(tf.tensor2d(h.quad, [d, d])),
        linear: tf.keep(tf.tensor2d(h.linear, [d, 1])),
        mean: tf.keep(tf.tensor1d(h.mean)),
        precision: tf.keep(tf.tensor2d(h.precision, [d, d])),
        ...(h.bank ? { bankT: tf.keep(tf.transpose(tf.tensor2d(h.bank, [h.bank.length / d, d]))) as tf.Tensor2D } : {}), // [F, m]
      })),
    );
  }

  /**
   * For features (one [B, F] per detector layer, in detector order; wider ones, e.g. mean+std given to a mean
   * detector, are cut to the first F columns): the logits z [B], the support distances [B] (mean over layers of
   * d_in), and each row's nearest centred bank cosine [B] (max over layers and entries; −2 when bank-free).
   * Call inside tf.tidy.
   */
  score(features: readonly tf.Tensor2D[]): { z: tf.Tensor1D; distance: tf.Tensor1D; nearest: tf.Tensor1D } {
    const d = this.detector.dim;
    const nearest: tf.Tensor1D[] = [];
    let z: tf.Tensor1D | undefined;
    let distance: tf.Tensor1D | undefined;
    this.layers.forEach((l, j) => {
      const given = features[j]!;
      const f = given.shape[1] === d ? given : (tf.slice(given, [0, 0], [-1, d]) as tf.Tensor2D);
      const layerZ = tf.reshape(tf.add(tf.sum(tf.mul(tf.matMul(f, l.quad), f), 1, true), tf.matMul(f, l.linear)), [-1]) as tf.Tensor1D; // [B]
      z = z ? tf.add(z, layerZ) : layerZ;
      const centred = tf.sub(f, l.mean);
      const dIn = tf.sum(tf.mul(tf.matMul(centred, l.precision), centred), 1) as tf.Tensor1D; // [B]
      distance = distance ? tf.add(distance, dIn) : dIn;
      if (l.bankT) nearest.push(tf.max(tf.matMul(tf.div(centred, tf.maximum(tf.norm(centred, 2, 1, true), 1e-12)), l.bankT), 1) as tf.Tensor1D);
    });
    const b = features[0]!.shape[0];
    return {
      z: tf.add(z!, this.constant) as tf.Tensor1D,
      distance: tf.div(distance!, d * this.layers.length) as tf.Tensor1D,
      nearest: (nearest.length > 0 ? tf.max(tf.stack(nearest, 1), 1) : tf.fill([b], -2)) as tf.Tensor1D,
    };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const l of this.layers) {
      l.quad.dispose();
      l.linear.dispose();
      l.mean.dispose();
      l.precision.dispose();
      l.bankT?.dispose();
    }
  }
}
