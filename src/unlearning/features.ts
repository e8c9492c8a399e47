/**
 * The O3 detector's input features (ALGORITHMS.md §6): f_ℓ(x) = the mean over x's real (non-pad) tokens of the FROZEN
 * BASE model's hidden state ℓ, no adapter applied. The base never changes after pretraining, so a detector fitted for
 * request t stays valid however the utility adapter is later retrained.
 *
 * Layers follow HF's `output_hidden_states` numbering: ℓ = 0 is the embedding output (token + position embeddings),
 * ℓ = 1 … nLayer the residual stream after block ℓ − 1. Layer 0 costs one host pass over the tokens (pooledEmbeddings);
 * any deeper layer costs a forward pass of the base — which doubles the cost of serving a tiny model, hence the choice
 * of layers matters.
 *
 * Pooling: `mean`, or the mean followed by more statistics of the same tokens. Each pooling's columns start with the
 * previous one's (mean | std | max | min, each C wide), so a detector fitted on a narrower pooling reads the first F
 * columns of a wider one: serving computes the widest pooling its detectors need, once.
 */
import * as tf from '@tensorflow/tfjs';
import type { GPT2 } from '../model/gpt2.js';
import { chunks, gatherBatch } from '../train/batches.js';
import type { TrainerData } from '../train/types.js';
import { rowsOf } from '../train/types.js';
import { UnlearningError } from './errors.js';
import type { NgramSpec } from './ngrams.js';
import { ngramFeatures, sameNgramSpec } from './ngrams.js';

/** How a hidden state's tokens are pooled into one feature vector: statistics over the real tokens, per channel. */
export type Pooling = 'mean' | 'mean+std' | 'mean+std+max+min';
/** Narrowest first; each one's columns are a prefix of the next one's (see the header). */
export const POOLINGS: readonly Pooling[] = Object.freeze(['mean', 'mean+std', 'mean+std+max+min']);

/** F: the feature width of a layer pooled with `pooling`, for a base of width C. */
export function featureDim(c: number, pooling: Pooling): number {
  return c * pooling.split('+').length;
}

/** The pooling whose columns hold every one of `poolings` as a prefix (the widest; `mean` for none). */
export function widestPooling(poolings: readonly Pooling[]): Pooling {
  return POOLINGS[Math.max(0, ...poolings.map((p) => POOLINGS.indexOf(p)))]!;
}

/** Per detector layer, row-major [n, F] features of n examples. */
export interface LayerFeatures {
  readonly n: number;
  readonly dim: number; // F
  readonly pooling: Pooling;
  readonly layers: readonly number[]; // which hidden states, in `data` order
  readonly data: readonly Float32Array[]; // data[k]: [n, F] for hidden state layers[k]
  readonly input?: InputFeatures; // the detector's input block (ngrams.ts), when it has one
}

/** The input block's dense features [n, spec.buckets]. */
export interface InputFeatures {
  readonly spec: NgramSpec;
  readonly data: Float32Array;
}

/** The rows of `a` then those of `b`, which must come from the same layers and pooling. */
export function concatFeatures(a: LayerFeatures, b: LayerFeatures): LayerFeatures {
  if (a.layers.join() !== b.layers.join() || a.dim !== b.dim || a.pooling !== b.pooling || !sameNgramSpec(a.input?.spec, b.input?.spec)) {
    throw new UnlearningError('only features of the same layers, pooling and input block can be concatenated', 'bad_data');
  }
  const join = (x: Float32Array, y: Float32Array): Float32Array => {
    const out = new Float32Array(x.length + y.length);
    out.set(x);
    out.set(y, x.length);
    return out;
  };
  const data = a.data.map((x, k) => join(x, b.data[k]!));
  return { ...a, n: a.n + b.n, data, ...(a.input ? { input: { spec: a.input.spec, data: join(a.input.data, b.input!.data) } } : {}) };
}

export function checkLayers(layers: readonly number[], nLayer: number): void {
  if (layers.length === 0) throw new UnlearningError('the detector needs at least one layer', 'bad_option');
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l > nLayer) {
      throw new UnlearningError(`detector layer ${l} is not a hidden state of this ${nLayer}-layer model (0 = embeddings … ${nLayer})`, 'bad_option');
    }
  }
  if (new Set(layers).size !== layers.length) throw new UnlearningError('detector layers must not repeat', 'bad_option');
}

/**
 * Pooled statistics of the embedding output h[b, t] = wte[ids[b, t]] + wpe[t], computed on the host: the embedding
 * lookup is a gather, which costs the wasm backend ~7 ms for a 32 × 128 batch of a 64-wide base, against ~0.3 ms for
 * this loop — and it runs on every served batch. Same formulas as the device pooling in BaseFeatures.pooled; sums in
 * float64. Returns [B, F] row-major.
 */
function pooledEmbeddings(ids: ArrayLike<number>, mask: ArrayLike<number>, b: number, t: number, wte: Float32Array, wpe: Float32Array, c: number, pooling: Pooling): Float32Array {
  const stats = pooling.split('+').length;
  const out = new Float32Array(b * stats * c);
  const sum = new Float64Array(c);
  const sumSq = new Float64Array(c);
  const max = new Float32Array(c);
  const min = new Float32Array(c);
  for (let row = 0; row < b; row++) {
    sum.fill(0);
    sumSq.fill(0);
    max.fill(-Infinity);
    min.fill(Infinity);
    let weight = 0;
    for (let j = 0; j < t; j++) {
      const m = mask[row * t + j]!;
      if (m === 0) continue;
      weight += m;
      const tok = ids[row * t + j]! * c;
      const pos = j * c;
      for (let k = 0; k < c; k++) {
        const h = wte[tok + k]! + wpe[pos + k]!;
        sum[k]! += m * h;
        sumSq[k]! += m * h * h;
        if (h > max[k]!) max[k] = h;
        if (h < min[k]!) min[k] = h;
      }
    }
    const count = Math.max(weight, 1);
    const at = row * stats * c;
    for (let k = 0; k < c; k++) {
      const mean = sum[k]! / count;
      out[at + k] = mean;
      if (stats > 1) out[at + c + k] = Math.sqrt(Math.max(0, sumSq[k]! / count - mean * mean)); // E[h²] − E[h]² can round below 0
      if (stats > 2) {
        out[at + 2 * c + k] = weight > 0 ? max[k]! : 0; // a row without tokens gets 0, like its mean
        out[at + 3 * c + k] = weight > 0 ? min[k]! : 0;
      }
    }
  }
  return out;
}

/** Computes pooled base features. Holds a host copy of the embeddings once layer 0 is asked for; dispose() drops it. */
export class BaseFeatures {
  private embeddings: { wte: Float32Array; wpe: Float32Array } | undefined;

  constructor(private readonly model: GPT2) {}

  /**
   * One [B, F] tensor per layer for ids [B, T] and mask [B, T] (1 token, 0 pad); `host`, their host copies when the
   * caller already read them (layer 0 is pooled on the host). Call inside tf.tidy.
   */
  pooled(ids: tf.Tensor2D, mask: tf.Tensor2D, layers: readonly number[], pooling: Pooling, host?: { readonly ids: ArrayLike<number>; readonly mask: ArrayLike<number> }): tf.Tensor2D[] {
    const [b, t] = ids.shape;
    const c = this.model.config.nEmbd;
    const m = tf.expandDims(mask, 2); // [B, T, 1]
    const count = tf.maximum(tf.sum(mask, 1, true), 1); // [B, 1]
    const pool = (h: tf.Tensor3D): tf.Tensor2D => {
      const mean = tf.div(tf.sum(tf.mul(h, m), 1), count) as tf.Tensor2D; // [B, C]
      if (pooling === 'mean') return mean;
      const meanSq = tf.div(tf.sum(tf.mul(tf.square(h), m), 1), count); // [B, C]
      const std = tf.sqrt(tf.relu(tf.sub(meanSq, tf.square(mean)))); // relu: E[h²] − E[h]² can round below 0
      if (pooling === 'mean+std') return tf.concat([mean, std], 1) as tf.Tensor2D; // [B, 2C]
      // Pads are pushed far below (above) every real value so they never win; a row without tokens gets 0, like its mean.
      const far = tf.mul(tf.sub(1, m), 1e9); // [B, T, 1]
      const any = tf.minimum(tf.sum(mask, 1, true), 1); // [B, 1]
      const max = tf.mul(tf.max(tf.sub(h, far), 1), any);
      const min = tf.mul(tf.min(tf.add(h, far), 1), any);
      return tf.concat([mean, std, max, min], 1) as tf.Tensor2D; // [B, 4C]
    };
    const blocks = layers.some((l) => l > 0) ? this.model.forward(ids, undefined, { collectHiddens: true }).layers : []; // L × [B, T, C]
    return layers.map((l) => {
      if (l > 0) return pool(blocks[l - 1]!);
      const { wte, wpe } = this.embeddingWeights();
      const pooledHost = pooledEmbeddings(host?.ids ?? ids.dataSync(), host?.mask ?? mask.dataSync(), b, t, wte, wpe, c, pooling); // GPT2.forward's embedding output, pooled
      return tf.tensor2d(pooledHost, [b, featureDim(c, pooling)]);
    });
  }

  dispose(): void {
    this.embeddings = undefined;
  }

  private embeddingWeights(): { wte: Float32Array; wpe: Float32Array } {
    if (!this.embeddings) {
      const w = this.model.hostWeights();
      this.embeddings = { wte: w.get('wte.weight')!.data, wpe: w.get('wpe.weight')!.data };
    }
    return this.embeddings;
  }
}

/**
 * Features of every row of `data` (or its subset, in subset order), computed in batches of `batchSize`; with
 * `ngrams`, also the input block's (ngrams.ts; null or absent: none, as DetectorConfig.input).
 */
export function extractFeatures(model: GPT2, data: TrainerData, layers: readonly number[], pooling: Pooling, batchSize = 32, ngrams?: NgramSpec | null): LayerFeatures {
  checkLayers(layers, model.config.nLayer);
  const rows = rowsOf(data);
  const c = featureDim(model.config.nEmbd, pooling);
  const out = layers.map(() => new Float32Array(rows.length * c));
  const base = new BaseFeatures(model);
  try {
    let at = 0;
    for (const chunk of chunks(rows, batchSize)) {
      const batch = gatherBatch(data, chunk);
      const pooled = tf.tidy(() => {
        const ids = tf.tensor2d(batch.ids, [batch.size, batch.seqLen], 'int32');
        const mask = tf.tensor2d(batch.mask, [batch.size, batch.seqLen], 'float32');
        return base.pooled(ids, mask, layers, pooling);
      });
      pooled.forEach((p, k) => {
        out[k]!.set(p.dataSync() as Float32Array, at * c);
        p.dispose();
      });
      at += batch.size;
    }
  } finally {
    base.dispose();
  }
  return { n: rows.length, dim: c, pooling, layers: [...layers], data: out, ...(ngrams ? { input: { spec: ngrams, data: ngramFeatures(data, ngrams) } } : {}) };
}
