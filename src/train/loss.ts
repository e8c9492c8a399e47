/**
 * The losses every trainer and evaluator shares, written with one-hot products instead of gather so their gradients
 * exist on every backend (gather's gradient has no wasm kernel). Pure functions of tensors: call inside tf.tidy.
 */
import * as tf from '@tensorflow/tfjs';
import type { GPT2 } from '../model/gpt2.js';
import type { LoraInput } from '../model/gpt2.js';
import type { HostBatch } from './batches.js';

/** Per-example softmax cross-entropy −log p(label): logits [B, K], labels int32 [B] → [B]. */
export function crossEntropyPerExample(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const k = logits.shape[1];
  const logp = tf.logSoftmax(logits); // [B, K]
  return tf.neg(tf.sum(tf.mul(tf.oneHot(labels, k).toFloat(), logp), 1)) as tf.Tensor1D; // [B]
}

/** The batch's tensors: ids [B, T] int32, mask [B, T] float32, labels [B] int32. */
export function batchTensors(batch: HostBatch): { ids: tf.Tensor2D; mask: tf.Tensor2D; labels: tf.Tensor1D } {
  const shape: [number, number] = [batch.size, batch.seqLen];
  return {
    ids: tf.tensor2d(batch.ids, shape, 'int32'),
    mask: tf.tensor2d(batch.mask, shape, 'float32'),
    labels: tf.tensor1d(batch.labels, 'int32'),
  };
}

/** Mean classification cross-entropy of `model.classify` on one batch (a scalar). */
export function classificationLoss(model: GPT2, lora: LoraInput, batch: HostBatch): tf.Scalar {
  const { ids, mask, labels } = batchTensors(batch);
  return tf.mean(crossEntropyPerExample(model.classify(ids, mask, lora), labels)) as tf.Scalar;
}

/**
 * Mean next-token cross-entropy over windows: windows int32 [B, T + 1]; inputs are columns 0..T−1, targets 1..T.
 * Returns a scalar (nats per token).
 */
export function languageModelLoss(model: GPT2, windows: tf.Tensor2D, lora?: LoraInput): tf.Scalar {
  const [b, t1] = windows.shape;
  const t = t1 - 1;
  const inputs = tf.slice(windows, [0, 0], [b, t]) as tf.Tensor2D;
  const targets = tf.reshape(tf.slice(windows, [0, 1], [b, t]), [b * t]) as tf.Tensor1D;
  const logits = model.lmLogits(inputs, lora); // [B, T, V]
  const v = logits.shape[2];
  return tf.mean(crossEntropyPerExample(tf.reshape(logits, [b * t, v]) as tf.Tensor2D, targets)) as tf.Scalar;
}
