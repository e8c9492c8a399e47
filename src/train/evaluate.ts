/**
 * Evaluation: classification loss/accuracy of an adapter, and language-model perplexity of a base model.
 * Forward passes only, in fixed-size batches inside tf.tidy; sums accumulate in float64 on the host.
 */
import * as tf from '@tensorflow/tfjs';
import type { GPT2, LoraInput } from '../model/gpt2.js';
import type { LoraConfig, LoraParams } from '../model/lora.js';
import { toTf } from '../model/lora.js';
import type { TensorMap } from '../tensors/host.js';
import { chunks, gatherBatch } from './batches.js';
import { TrainError } from './errors.js';
import { batchTensors, crossEntropyPerExample, languageModelLoss } from './loss.js';
import type { TrainerData } from './types.js';
import { rowsOf } from './types.js';

export interface EvalOptions {
  /** Examples per forward pass (memory bound, not semantics). Default 32. */
  readonly batchSize?: number;
}

export interface EvalResult {
  /** Mean cross-entropy (nats) over the examples. */
  readonly loss: number;
  /** Fraction of examples whose argmax logit is the label. */
  readonly accuracy: number;
  readonly n: number;
}

/** Loss and accuracy of `model` + `adapter` on `data` (all rows, or its subset). Ties in argmax go to the lower id. */
export function evaluate(model: GPT2, lora: LoraConfig, adapter: TensorMap, data: TrainerData, opts: EvalOptions = {}): EvalResult {
  const rows = rowsOf(data);
  if (rows.length === 0) throw new TrainError('cannot evaluate on zero examples', 'bad_data');
  const batchSize = opts.batchSize ?? 32;
  const tensors = toTf(adapter);
  const params: LoraParams = { config: lora, tensors };
  let lossSum = 0;
  let correct = 0;
  try {
    for (const chunk of chunks(rows, batchSize)) {
      const batch = gatherBatch(data, chunk);
      const [losses, predicted] = tf.tidy(() => {
        const { ids, mask, labels } = batchTensors(batch);
        const logits = model.classify(ids, mask, params);
        return [crossEntropyPerExample(logits, labels), tf.argMax(logits, 1)];
      });
      const l = losses.dataSync();
      const p = predicted.dataSync();
      losses.dispose();
      predicted.dispose();
      for (let i = 0; i < batch.size; i++) {
        lossSum += l[i]!;
        if (p[i] === batch.labels[i]) correct += 1;
      }
    }
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return { loss: lossSum / rows.length, accuracy: correct / rows.length, n: rows.length };
}

export interface PerplexityResult {
  /** Mean next-token cross-entropy, nats per token. */
  readonly loss: number;
  /** exp(loss). */
  readonly perplexity: number;
  /** Predicted tokens counted. */
  readonly tokens: number;
}

/**
 * Perplexity over a token stream cut into non-overlapping windows of seqLen + 1 (a tail shorter than a window is
 * dropped). Every window predicts seqLen tokens, so the per-window means average with equal weight.
 */
export function perplexity(model: GPT2, tokens: Int32Array, seqLen: number, lora?: LoraInput, opts: EvalOptions = {}): PerplexityResult {
  const w = seqLen + 1;
  const windows = Math.floor(tokens.length / w);
  if (windows === 0) throw new TrainError(`need at least ${w} tokens for one window of seqLen ${seqLen}, got ${tokens.length}`, 'bad_data');
  const batchSize = opts.batchSize ?? 16;
  let sum = 0;
  for (let start = 0; start < windows; start += batchSize) {
    const b = Math.min(batchSize, windows - start);
    const slice = tokens.subarray(start * w, (start + b) * w);
    const loss = tf.tidy(() => languageModelLoss(model, tf.tensor2d(slice, [b, w], 'int32'), lora));
    sum += loss.dataSync()[0]! * b;
    loss.dispose();
  }
  const loss = sum / windows;
  return { loss, perplexity: Math.exp(loss), tokens: windows * seqLen };
}
