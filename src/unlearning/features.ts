/**
 * The O3 detector's input features (ALGORITHMS.md §6): f_ℓ(x) = the mean over x's real (non-pad) tokens of block ℓ's
 * output in the FROZEN BASE model, no adapter applied. The base never changes after pretraining, so a detector fitted
 * for request t stays valid however the utility adapter is later retrained.
 *
 * Layer ℓ indexes GPT2.forward's per-block outputs, 0 … nLayer − 1 (the residual stream after block ℓ, before ln_f).
 */
import * as tf from '@tensorflow/tfjs';
import type { GPT2 } from '../model/gpt2.js';
import { chunks, gatherBatch } from '../train/batches.js';
import type { TrainerData } from '../train/types.js';
import { rowsOf } from '../train/types.js';
import { UnlearningError } from './errors.js';

/** Per detector layer, row-major [n, C] features of n examples. */
export interface LayerFeatures {
  readonly n: number;
  readonly dim: number; // C
  readonly layers: readonly number[]; // which blocks, in `data` order
  readonly data: readonly Float32Array[]; // data[k]: [n, C] for block layers[k]
}

export function checkLayers(layers: readonly number[], nLayer: number): void {
  if (layers.length === 0) throw new UnlearningError('the detector needs at least one layer', 'bad_option');
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= nLayer) throw new UnlearningError(`detector layer ${l} is not a block of this ${nLayer}-layer model (0 … ${nLayer - 1})`, 'bad_option');
  }
  if (new Set(layers).size !== layers.length) throw new UnlearningError('detector layers must not repeat', 'bad_option');
}

/**
 * Mean-pooled base features of ids [B, T] with mask [B, T] (1 token, 0 pad): one [B, C] tensor per layer. Call inside
 * tf.tidy. Used by serving, where the ids are already on the device.
 */
export function pooledFeatures(model: GPT2, ids: tf.Tensor2D, mask: tf.Tensor2D, layers: readonly number[]): tf.Tensor2D[] {
  const { layers: hidden } = model.forward(ids, undefined, { collectHiddens: true }); // L × [B, T, C]
  const m = tf.expandDims(mask, 2); // [B, T, 1]
  const count = tf.maximum(tf.sum(mask, 1, true), 1); // [B, 1]
  return layers.map((l) => tf.div(tf.sum(tf.mul(hidden[l]!, m), 1), count) as tf.Tensor2D); // [B, C]
}

/** Features of every row of `data` (or its subset, in subset order), computed in batches of `batchSize`. */
export function extractFeatures(model: GPT2, data: TrainerData, layers: readonly number[], batchSize = 32): LayerFeatures {
  checkLayers(layers, model.config.nLayer);
  const rows = rowsOf(data);
  const c = model.config.nEmbd;
  const out = layers.map(() => new Float32Array(rows.length * c));
  let at = 0;
  for (const chunk of chunks(rows, batchSize)) {
    const batch = gatherBatch(data, chunk);
    const pooled = tf.tidy(() => {
      const ids = tf.tensor2d(batch.ids, [batch.size, batch.seqLen], 'int32');
      const mask = tf.tensor2d(batch.mask, [batch.size, batch.seqLen], 'float32');
      return pooledFeatures(model, ids, mask, layers);
    });
    pooled.forEach((p, k) => {
      out[k]!.set(p.dataSync() as Float32Array, at * c);
      p.dispose();
    });
    at += batch.size;
  }
  return { n: rows.length, dim: c, layers: [...layers], data: out };
}
