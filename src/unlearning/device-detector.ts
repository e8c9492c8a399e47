/**
 * The O3 detector as served (detector.ts fits it): DeviceDetector scores a batch's pooled layer features on the
 * device and its input block on the host, and detectorScores does the same for host features (evaluation).
 *
 * Cost: z is a quadratic form in f, so each layer folds into one matrix,
 *   z = Σ_ℓ fᵀ M_ℓ f + m_ℓᵀ f + k,   M_ℓ = (a P + b Q)/F,  m_ℓ = −2(a P μ + b Q ν)/F,
 * one [B, F]·[F, F] product per layer whatever the number of components. A Gaussian input block is folded the same
 * way but scored on the host over each row's non-zeros (at most 2 × 128 of 1,024 for 128 tokens); a neighbour block
 * adds one bank column per non-zero into the row's cosines (neighbours.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { Detector, GaussianStats, ScoredSet } from './detector.js';
import { componentsPerLayer, neighbourSearches } from './detector.js';
import { UnlearningError } from './errors.js';
import type { LayerFeatures } from './features.js';
import type { SparseRows } from './ngrams.js';
import { sameNgramSpec, sparseRows } from './ngrams.js';
import type { NeighbourBank } from './neighbours.js';
import { neighbourDistances } from './neighbours.js';

/** Logits z [n] and support distances [n] of host features, computed as served (DeviceDetector): for evaluation. */
export function detectorScores(detector: Detector, feats: LayerFeatures): ScoredSet {
  if (feats.layers.join() !== detector.layers.map((l) => l.layer).join() || feats.dim !== detector.dim || feats.pooling !== detector.pooling || !sameNgramSpec(feats.input?.spec, detector.input?.ngrams)) {
    throw new UnlearningError(`features of layers [${feats.layers.join(', ')}] (${feats.pooling}) or their input block do not match the detector's`, 'bad_data');
  }
  const buckets = feats.input?.spec.buckets ?? 0;
  const device = new DeviceDetector(detector);
  const scores = new Float64Array(feats.n);
  const distances = new Float64Array(feats.n);
  const chunk = 256;
  try {
    for (let start = 0; start < feats.n; start += chunk) {
      const n = Math.min(chunk, feats.n - start);
      const [z, dist] = tf.tidy(() => {
        const input = feats.input ? sparseRows(feats.input.data.subarray(start * buckets, (start + n) * buckets), n, buckets) : undefined;
        const r = device.score(
          feats.data.map((x) => tf.tensor2d(x.subarray(start * feats.dim, (start + n) * feats.dim), [n, feats.dim])),
          input,
        );
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

/** Block j's components folded into one quadratic form in f: z_j = fᵀ M f + mᵀ f + k (see the header). */
function foldBlock(g: GaussianStats & { readonly reference?: GaussianStats }, j: number, weights: Float32Array, k: number, d: number): { quad: Float32Array; linear: Float32Array; constant: number } {
  const parts: [GaussianStats, number][] = [[g, weights[j * k]!]];
  if (g.reference) parts.push([g.reference, weights[j * k + 1]!]);
  const quad = new Float32Array(d * d);
  const linear = new Float32Array(d);
  let constant = 0;
  for (const [s, w] of parts) {
    const pm = new Float64Array(d); // P μ
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) pm[a]! += s.precision[a * d + b]! * s.mean[b]!;
    for (let i = 0; i < d * d; i++) quad[i]! += (w * s.precision[i]!) / d;
    for (let a = 0; a < d; a++) {
      linear[a]! += (-2 * w * pm[a]!) / d;
      constant += (w * s.mean[a]! * pm[a]!) / d;
    }
  }
  return { quad, linear, constant };
}

/** The input block as served: its Gaussian folded into M and m, or its neighbour searches with their weights. */
type ServedInput =
  | { readonly kind: 'gaussian'; readonly quad: Float32Array; readonly linear: Float32Array; readonly d: number }
  | { readonly kind: 'neighbours'; readonly searches: readonly { bank: NeighbourBank; k: number; weight: number }[]; readonly d: number };

/**
 * The detector folded for serving (see the header): per layer M [F, F], m [F], plus the bank, on the device; the
 * input block on the host, where its sparse rows (a few hundred non-zeros of 1,024) cost far less than a dense
 * product: a Gaussian block's M and m, or a neighbour block's banks. Dispose when done.
 */
export class DeviceDetector {
  // quad/linear absent for a layer that does not enter z (all its weights 0: beside a neighbour input block).
  private readonly layers: { quad?: tf.Tensor2D; linear?: tf.Tensor2D; mean: tf.Tensor1D; precision: tf.Tensor2D; bankT?: tf.Tensor2D }[];
  private readonly input: ServedInput | undefined;
  private readonly constant: number;
  private disposed = false;

  constructor(readonly detector: Detector) {
    const d = detector.dim;
    const k = componentsPerLayer(detector);
    let constant = detector.bias;
    const host = detector.layers.map((l, j) => {
      const weighted = detector.weights.subarray(j * k, (j + 1) * k).some((w) => w !== 0);
      const folded = weighted ? foldBlock(l, j, detector.weights, k, d) : undefined;
      constant += folded?.constant ?? 0;
      return { folded, mean: l.mean, precision: l.precision, bank: l.bank };
    });
    if (detector.input) {
      const width = detector.input.ngrams.buckets;
      const j = detector.layers.length;
      if (detector.input.kind === 'gaussian') {
        const folded = foldBlock(detector.input, j, detector.weights, k, width);
        constant += folded.constant;
        this.input = { kind: 'gaussian', quad: folded.quad, linear: folded.linear, d: width };
      } else {
        const searches = neighbourSearches(detector.input).map((search, c) => ({ ...search, weight: detector.weights[j * k + c]! }));
        this.input = { kind: 'neighbours', searches, d: width };
      }
    }
    this.constant = constant;
    // tidy + keep: the transposed bank's source is freed, and a detector built inside a caller's tidy survives it.
    this.layers = tf.tidy(() =>
      host.map((h) => ({
        ...(h.folded ? { quad: tf.keep(tf.tensor2d(h.folded.quad, [d, d])), linear: tf.keep(tf.tensor2d(h.folded.linear, [d, 1])) } : {}),
        mean: tf.keep(tf.tensor1d(h.mean)),
        precision: tf.keep(tf.tensor2d(h.precision, [d, d])),
        ...(h.bank ? { bankT: tf.keep(tf.transpose(tf.tensor2d(h.bank, [h.bank.length / d, d]))) as tf.Tensor2D } : {}), // [F, m]
      })),
    );
  }

  /**
   * For features (one [B, F] per detector layer, in detector order; wider ones, e.g. mean+std given to a mean
   * detector, are cut to the first F columns) and, when the detector has an input block, the same rows' input-block
   * features: the logits z [B], the support distances [B] (mean over layers of d_in), and each row's nearest centred
   * bank cosine [B] (max over layers and entries; −2 when bank-free). Call inside tf.tidy.
   */
  score(features: readonly tf.Tensor2D[], input?: SparseRows): { z: tf.Tensor1D; distance: tf.Tensor1D; nearest: tf.Tensor1D } {
    const d = this.detector.dim;
    const nearest: tf.Tensor1D[] = [];
    let z: tf.Tensor1D | undefined;
    let distance: tf.Tensor1D | undefined;
    this.layers.forEach((l, j) => {
      const given = features[j]!;
      const f = given.shape[1] === d ? given : (tf.slice(given, [0, 0], [-1, d]) as tf.Tensor2D);
      if (l.quad && l.linear) {
        const layerZ = tf.reshape(tf.add(tf.sum(tf.mul(tf.matMul(f, l.quad), f), 1, true), tf.matMul(f, l.linear)), [-1]) as tf.Tensor1D; // [B]
        z = z ? tf.add(z, layerZ) : layerZ;
      }
      const centred = tf.sub(f, l.mean);
      const dIn = tf.sum(tf.mul(tf.matMul(centred, l.precision), centred), 1) as tf.Tensor1D; // [B]
      distance = distance ? tf.add(distance, dIn) : dIn;
      if (l.bankT) nearest.push(tf.max(tf.matMul(tf.div(centred, tf.maximum(tf.norm(centred, 2, 1, true), 1e-12)), l.bankT), 1) as tf.Tensor1D);
    });
    const b = features[0]!.shape[0];
    if (this.input) {
      if (!input || input.n !== b || input.dim !== this.input.d) throw new UnlearningError(`this detector needs the ${b} rows' input-block features (${this.input.d} wide)`, 'bad_data');
      const inputZ = this.inputScores(input);
      z = z ? tf.add(z, inputZ) : inputZ;
    }
    return {
      z: tf.add(z ?? tf.zeros([b]), this.constant) as tf.Tensor1D,
      distance: tf.div(distance!, d * this.layers.length) as tf.Tensor1D,
      nearest: (nearest.length > 0 ? tf.max(tf.stack(nearest, 1), 1) : tf.fill([b], -2)) as tf.Tensor1D,
    };
  }

  /** The input block's part of z per row: its weighted neighbour distances, or its quadratic form. */
  private inputScores(rows: SparseRows): tf.Tensor1D {
    const input = this.input!;
    if (input.kind === 'gaussian') return tf.tensor1d(quadraticScores(input, rows));
    const out = new Float32Array(rows.n);
    for (const { bank, k, weight } of input.searches) neighbourDistances(bank, rows, k).forEach((v, i) => (out[i]! += weight * v));
    return tf.tensor1d(out);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const l of this.layers) {
      l.quad?.dispose();
      l.linear?.dispose();
      l.mean.dispose();
      l.precision.dispose();
      l.bankT?.dispose();
    }
  }
}

/** The Gaussian input block's part of z per row: vᵀ M v + mᵀ v over the row's non-zeros v (M symmetric). */
function quadraticScores({ quad, linear, d }: { quad: Float32Array; linear: Float32Array; d: number }, rows: SparseRows): Float32Array {
  const { index, value, offsets } = rows;
  const out = new Float32Array(rows.n);
  for (let i = 0; i < rows.n; i++) {
    const to = offsets[i + 1]!;
    let z = 0;
    for (let p = offsets[i]!; p < to; p++) {
      const row = index[p]! * d;
      let t = 0; // Σ_{q > p} M[a, b_q] v_q
      for (let q = p + 1; q < to; q++) t += quad[row + index[q]!]! * value[q]!;
      const va = value[p]!;
      z += va * (quad[row + index[p]!]! * va + 2 * t + linear[index[p]!]!);
    }
    out[i] = z;
  }
  return out;
}
