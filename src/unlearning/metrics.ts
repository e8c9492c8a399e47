/**
 * How well an unlearning request worked (ALGORITHMS.md §6 "Metrics"): accuracy of the served model on the forgotten
 * samples themselves, on held-out samples of the forgotten distribution and on the retained distribution (before and
 * after unlearning), the detector's AUROC (held-out forgotten distribution against held-out retained data), and the
 * gate's inference overhead, time(served with detectors and gates) / time(utility adapter alone) − 1.
 */
import * as tf from '@tensorflow/tfjs';
import type { GPT2 } from '../model/gpt2.js';
import type { LoraParams } from '../model/lora.js';
import { toTf } from '../model/lora.js';
import { chunks, gatherBatch } from '../train/batches.js';
import type { TrainerData } from '../train/types.js';
import { rowsOf } from '../train/types.js';
import type { UtilityAdapter } from './adapter.js';
import type { Detector } from './detector.js';
import { detectorScores } from './device-detector.js';
import { extractFeatures } from './features.js';
import type { UnlearningServing } from './serving.js';
import { auroc } from './stats.js';

export interface UnlearningMetrics {
  readonly forget_acc: number; // served accuracy on the forget set D_t itself (true labels)
  readonly forget_heldout_acc: number; // … on held-out samples of the forgotten distribution
  readonly chance_acc: number; // 1 / K
  readonly retain_acc_before: number; // utility adapter alone on held-out retained data
  readonly retain_acc_after: number; // served (with gated unlearning adapters) on the same data
  readonly auroc: number; // detector t: held-out forgotten distribution vs held-out retained data
  readonly gate_overhead: number; // served time / utility-only time − 1, on the retained data
}

export interface MetricSets {
  readonly forget: TrainerData; // D_t
  readonly forgetHeldOut: TrainerData; // unseen samples of the forgotten distribution
  readonly retain: TrainerData; // held-out retained data
}

type Probabilities = (ids: tf.Tensor2D, mask: tf.Tensor2D) => Float32Array;

interface Pass {
  readonly accuracy: number;
  readonly seconds: number;
}

/**
 * Accuracy of each way of predicting on `data`, and its time: per batch, the fastest of `repeats` runs, the ways
 * alternating, summed over batches. Load from other processes then hits every way alike, and a spike inflates one
 * run of one batch rather than a whole pass.
 */
function passes(data: TrainerData, batchSize: number, ways: readonly Probabilities[], k: number, repeats: number): Pass[] {
  const rows = rowsOf(data);
  const correct = ways.map(() => 0);
  const seconds = ways.map(() => 0);
  for (const chunk of chunks(rows, batchSize)) {
    const batch = gatherBatch(data, chunk);
    const ids = tf.tensor2d(batch.ids, [batch.size, batch.seqLen], 'int32');
    const mask = tf.tensor2d(batch.mask, [batch.size, batch.seqLen], 'float32');
    const fastest = ways.map(() => Infinity);
    const outputs: Float32Array[] = [];
    for (let r = 0; r < repeats; r++) {
      ways.forEach((way, w) => {
        const started = performance.now();
        outputs[w] = way(ids, mask);
        fastest[w] = Math.min(fastest[w]!, (performance.now() - started) / 1000);
      });
    }
    ids.dispose();
    mask.dispose();
    ways.forEach((_, w) => {
      seconds[w]! += fastest[w]!;
      const p = outputs[w]!;
      for (let i = 0; i < batch.size; i++) {
        let best = 0;
        for (let j = 1; j < k; j++) if (p[i * k + j]! > p[i * k + best]!) best = j;
        if (best === batch.labels[i]) correct[w]! += 1;
      }
    });
  }
  return ways.map((_, w) => ({ accuracy: correct[w]! / rows.length, seconds: seconds[w]! }));
}

/** The metrics of the newest request served by `serving`, whose detector is `detector`. */
export function unlearningMetrics(
  model: GPT2,
  utility: UtilityAdapter,
  serving: UnlearningServing,
  detector: Detector,
  sets: MetricSets,
  opts: { readonly batchSize?: number; readonly timingRepeats?: number } = {},
): UnlearningMetrics {
  const batchSize = opts.batchSize ?? 32;
  const repeats = opts.timingRepeats ?? 5;
  const k = utility.lora.numLabels;
  const params: LoraParams = { config: utility.lora, tensors: toTf(utility.adapter) };
  const plain = (ids: tf.Tensor2D, mask: tf.Tensor2D): Float32Array => {
    const p = tf.tidy(() => tf.softmax(model.classify(ids, mask, params)));
    const host = p.dataSync() as Float32Array;
    p.dispose();
    return host;
  };
  const served = (ids: tf.Tensor2D, mask: tf.Tensor2D): Float32Array => serving.predict(ids, mask).probabilities;
  try {
    const [before, after] = passes(sets.retain, batchSize, [plain, served], k, repeats) as [Pass, Pass];
    const layers = detector.layers.map((l) => l.layer);
    const positives = detectorScores(detector, extractFeatures(model, sets.forgetHeldOut, layers, detector.pooling, batchSize, detector.input?.ngrams)).scores;
    const negatives = detectorScores(detector, extractFeatures(model, sets.retain, layers, detector.pooling, batchSize, detector.input?.ngrams)).scores;
    return {
      forget_acc: passes(sets.forget, batchSize, [served], k, 1)[0]!.accuracy,
      forget_heldout_acc: passes(sets.forgetHeldOut, batchSize, [served], k, 1)[0]!.accuracy,
      chance_acc: 1 / k,
      retain_acc_before: before.accuracy,
      retain_acc_after: after.accuracy,
      auroc: auroc(positives, negatives),
      gate_overhead: after.seconds / before.seconds - 1,
    };
  } finally {
    for (const t of params.tensors.values()) t.dispose();
  }
}
