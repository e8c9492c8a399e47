/**
 * Local LoRA training by backpropagation: the baseline every forward-only trainer is compared to, and the client
 * trainer for devices with memory to spare.
 *
 * One step: a mini-batch, softmax cross-entropy of `model.classify` (HF GPT2ForSequenceClassification's loss), the
 * gradient of exactly the trainable adapter tensors (FFA-LoRA: lora_B + score.weight; LoRA: A, B and the head), and
 * an AdamW (or SGD) update. Deterministic given `seed` on a given backend: batch order comes from seedrandom and every op is
 * deterministic on cpu/wasm.
 *
 * With `dp`, sample-level DP-SGD (Abadi et al. 2016; ALGORITHMS.md §2): Poisson batches with rate q; for each example
 * the gradient of all trainable tensors flattened together is clipped to L2 norm ≤ C (jointly, not per tensor: the
 * same guarantee as the DP-LoRA paper's separate clipping with less noise per coordinate); the clipped gradients are
 * summed, N(0, σ²C² I) noise from node:crypto is added, and the sum is divided by the EXPECTED batch size q·N (a fixed
 * denominator; dividing by the realised size would leak it). Per-example gradients come from a loop of batch-size-1
 * backward passes: correct by construction, at B times the cost of one batched pass.
 */
import * as tf from '@tensorflow/tfjs';
import type { GPT2 } from '../model/gpt2.js';
import type { LoraConfig, LoraParams } from '../model/lora.js';
import { validateAdapter } from '../model/lora.js';
import type { NoiseSource } from '../privacy/gaussian.js';
import { privatizeGradients } from '../privacy/sample-level.js';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import type { Optimizer, OptimizerName } from './optimizer.js';
import { clipByGlobalNorm, makeOptimizer } from './optimizer.js';
import type { BatchSampler, HostBatch } from './batches.js';
import { PoissonBatches, ShuffledBatches, gatherBatch, seededUniform } from './batches.js';
import { TrainError } from './errors.js';
import { classificationLoss } from './loss.js';
import { constantLr, cosineLr, lrAt } from './schedule.js';
import type { BaseTrainOptions, LocalTrainResult, TrainerData } from './types.js';
import { rowsOf, trainableNames } from './types.js';

export interface BackpropOptions extends BaseTrainOptions {
  /** Decoupled AdamW weight decay on ≥2-D tensors. Default 0: LoRA fine-tuning (Hu et al.) uses none. */
  readonly weightDecay?: number;
  /** Clip each step's batch gradient to this joint L2 norm (not DP). Default: no clipping. */
  readonly clipGradNorm?: number;
  /** Learning-rate schedule over `steps`. Default 'constant'. */
  readonly schedule?: 'constant' | 'cosine';
  /** Default 'adamw'. */
  readonly optimizer?: OptimizerName;
}

/** Sample-level DP-SGD. With it, `BackpropOptions.batchSize` is ignored: the batch is Poisson(q) over the rows. */
export interface DpSgdOptions {
  /** C: each example's joint gradient L2 norm bound. */
  readonly clip: number;
  /** σ: the summed gradient gets N(0, σ²C²) noise per coordinate. */
  readonly noiseMultiplier: number;
  /** q: each example joins each batch independently with this probability; expected batch q·N. */
  readonly sampleRate: number;
  /** Gaussian source: src/privacy's gaussianNoise (node:crypto) in production. */
  readonly noise: NoiseSource;
}

/** The adapter on the device: trainable tensors as variables (in `names` order), the rest as constants. */
class DeviceAdapter {
  readonly vars = new Map<string, tf.Variable>();
  readonly all = new Map<string, tf.Tensor>();

  constructor(start: TensorMap, trainable: readonly string[]) {
    const train = new Set(trainable);
    for (const [name, t] of start) {
      const value = tf.tensor(t.data, [...t.shape], 'float32');
      if (train.has(name)) {
        const v = tf.variable(value, true); // unnamed: tfjs variable names are process-global
        value.dispose();
        this.vars.set(name, v);
        this.all.set(name, v);
      } else {
        this.all.set(name, value);
      }
    }
  }

  /** The full adapter on the host, in start order; frozen tensors are the start's own copies (never modified). */
  download(start: TensorMap): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const [name, t] of start) {
      const v = this.vars.get(name);
      out.set(name, v ? { shape: [...t.shape], data: Float32Array.from(v.dataSync() as Float32Array) } : { shape: [...t.shape], data: t.data.slice() });
    }
    return out;
  }

  dispose(): void {
    for (const t of this.all.values()) t.dispose();
  }
}

/** Gradients of `loss` with respect to the adapter's variables, keyed by adapter name. Caller disposes. */
function adapterGrads(adapter: DeviceAdapter, loss: () => tf.Scalar): { loss: number; grads: Map<string, tf.Tensor> } {
  const vars = [...adapter.vars];
  const { value, grads } = tf.variableGrads(loss, vars.map(([, v]) => v));
  const byName = new Map<string, tf.Tensor>();
  for (const [name, v] of vars) byName.set(name, grads[v.name]!);
  const lossValue = value.dataSync()[0]!;
  value.dispose();
  return { loss: lossValue, grads: byName };
}

function disposeAll(tensors: ReadonlyMap<string, tf.Tensor>): void {
  for (const t of tensors.values()) t.dispose();
}

/** One ordinary mini-batch step; returns the batch loss before the update. */
function sgdStep(model: GPT2, params: LoraParams, adapter: DeviceAdapter, optimizer: Optimizer, batch: HostBatch, lr: number, clipGradNorm?: number): number {
  const { loss, grads } = adapterGrads(adapter, () => classificationLoss(model, params, batch));
  if (!Number.isFinite(loss)) {
    disposeAll(grads);
    throw new TrainError(`training loss became ${loss}; lower the learning rate`, 'diverged');
  }
  let used = grads;
  if (clipGradNorm !== undefined) {
    used = clipByGlobalNorm(grads, clipGradNorm).grads;
    disposeAll(grads);
  }
  optimizer.step(used, lr);
  disposeAll(used);
  return loss;
}

/** Offsets of each trainable tensor inside the flattened gradient vector, in adapter order. */
function flatLayout(adapter: DeviceAdapter): { name: string; offset: number; shape: number[]; size: number }[] {
  let offset = 0;
  return [...adapter.vars].map(([name, v]) => {
    const entry = { name, offset, shape: [...v.shape], size: v.size };
    offset += v.size;
    return entry;
  });
}

/** One DP-SGD step (see the header); returns the mean per-example loss (NaN for an empty Poisson batch). */
function dpStep(
  model: GPT2,
  params: LoraParams,
  adapter: DeviceAdapter,
  optimizer: Optimizer,
  batch: HostBatch,
  lr: number,
  dp: DpSgdOptions,
  expectedBatch: number,
  stats: { clipped: number; examples: number },
): number {
  const layout = flatLayout(adapter);
  const dim = layout.reduce((a, l) => a + l.size, 0);
  const perExample: Float32Array[] = [];
  let lossSum = 0;
  for (let i = 0; i < batch.size; i++) {
    const one = sliceBatch(batch, i);
    const { loss, grads } = adapterGrads(adapter, () => classificationLoss(model, params, one));
    const flat = new Float32Array(dim);
    for (const l of layout) flat.set(grads.get(l.name)!.dataSync() as Float32Array, l.offset);
    disposeAll(grads);
    if (!Number.isFinite(loss)) throw new TrainError(`per-example loss became ${loss}; lower the learning rate`, 'diverged');
    lossSum += loss;
    if (l2(flat) > dp.clip) stats.clipped += 1; // for the clip-fraction metric only; privatizeGradients clips
    perExample.push(flat);
  }
  const g = privatizeGradients(perExample, dp.clip, dp.noiseMultiplier, expectedBatch, dp.noise, dim);
  const update = new Map<string, tf.Tensor>();
  for (const l of layout) update.set(l.name, tf.tensor(g.subarray(l.offset, l.offset + l.size), l.shape, 'float32'));
  optimizer.step(update, lr);
  disposeAll(update);
  stats.examples += batch.size;
  return batch.size > 0 ? lossSum / batch.size : Number.NaN;
}

function l2(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

function sliceBatch(batch: HostBatch, i: number): HostBatch {
  const t = batch.seqLen;
  return {
    size: 1,
    seqLen: t,
    ids: batch.ids.subarray(i * t, (i + 1) * t),
    mask: batch.mask.subarray(i * t, (i + 1) * t),
    labels: batch.labels.subarray(i, i + 1),
  };
}

function validate(opts: BackpropOptions, dp: DpSgdOptions | undefined, data: TrainerData, lora: LoraConfig): void {
  const bad = (msg: string): never => {
    throw new TrainError(msg, 'bad_option');
  };
  if (!Number.isInteger(opts.steps) || opts.steps < 0) bad(`steps must be a non-negative integer, got ${opts.steps}`);
  if (!dp && (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)) bad(`batchSize must be a positive integer, got ${opts.batchSize}`);
  if (!(opts.lr >= 0) || !Number.isFinite(opts.lr)) bad(`lr must be finite and ≥ 0, got ${opts.lr}`);
  if (opts.weightDecay !== undefined && !(opts.weightDecay >= 0)) bad(`weightDecay must be ≥ 0, got ${opts.weightDecay}`);
  if (opts.clipGradNorm !== undefined && !(opts.clipGradNorm > 0)) bad(`clipGradNorm must be > 0, got ${opts.clipGradNorm}`);
  if (dp) {
    if (!(dp.clip > 0) || !Number.isFinite(dp.clip)) bad(`DP clip norm must be finite and > 0, got ${dp.clip}`);
    if (!(dp.noiseMultiplier >= 0) || !Number.isFinite(dp.noiseMultiplier)) bad(`DP noise multiplier must be finite and ≥ 0, got ${dp.noiseMultiplier}`);
  }
  if (lora.numLabels < 1) bad('backprop classification training needs a head: set LoraConfig.numLabels ≥ 1');
  const rows = rowsOf(data);
  if (rows.length === 0) throw new TrainError('no training examples: the data (or its subset) is empty', 'bad_data');
  for (const r of rows) {
    const label = data.labels[r];
    if (label === undefined || label < 0 || label >= lora.numLabels) {
      throw new TrainError(`example ${r} has label ${label}, outside the head's ${lora.numLabels} classes`, 'bad_data');
    }
  }
}

/** Mean of the first / last max(1, ⌊steps/10⌋) finite entries: the TrainMetrics loss definition. */
export function lossWindow(losses: readonly number[]): { before: number; after: number } {
  const finite = losses.filter(Number.isFinite);
  if (finite.length === 0) return { before: Number.NaN, after: Number.NaN };
  const k = Math.max(1, Math.floor(finite.length / 10));
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { before: mean(finite.slice(0, k)), after: mean(finite.slice(-k)) };
}

/**
 * Trains the adapter `start` (validated against `model` and `lora`) on `data` and returns the full trained adapter.
 * Async only to yield to the event loop between steps (a client keeps answering heartbeats while it trains).
 */
export async function trainBackprop(
  model: GPT2,
  lora: LoraConfig,
  start: TensorMap,
  data: TrainerData,
  opts: BackpropOptions,
  dp?: DpSgdOptions,
): Promise<LocalTrainResult> {
  validate(opts, dp, data, lora);
  try {
    validateAdapter(start, model.config, lora);
  } catch (err) {
    throw new TrainError(`the start adapter does not fit the model: ${(err as Error).message}`, 'bad_adapter', { cause: err });
  }
  const rows = rowsOf(data);
  const names = trainableNames(start.keys(), opts.trainable);
  const schedule = opts.schedule === 'cosine' ? cosineLr(opts.lr, opts.steps) : constantLr(opts.lr);
  const sampler: BatchSampler = dp
    ? new PoissonBatches(rows, dp.sampleRate, seededUniform(`poisson:${opts.seed}`))
    : new ShuffledBatches(rows, opts.batchSize, opts.seed);
  const expectedBatch = dp ? dp.sampleRate * rows.length : 0;
  const adapter = new DeviceAdapter(start, names);
  const params: LoraParams = { config: lora, tensors: adapter.all };
  const optimizer = makeOptimizer(opts.optimizer ?? 'adamw', adapter.vars, opts.weightDecay ?? 0);
  const dpStats = { clipped: 0, examples: 0 };
  const losses: number[] = [];
  let seen = 0;
  const started = performance.now();
  try {
    for (let step = 0; step < opts.steps; step++) {
      const batch = gatherBatch(data, sampler.next());
      const lr = lrAt(schedule, step);
      const loss = dp
        ? dpStep(model, params, adapter, optimizer, batch, lr, dp, expectedBatch, dpStats)
        : sgdStep(model, params, adapter, optimizer, batch, lr, opts.clipGradNorm);
      losses.push(loss);
      seen += batch.size;
      opts.onStep?.({ step: step + 1, steps: opts.steps, loss, lr, batchSize: batch.size });
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const window = lossWindow(losses);
    const metrics = {
      loss_before: window.before,
      loss_after: window.after,
      steps: opts.steps,
      seconds: (performance.now() - started) / 1000,
      examples_seen: seen,
      ...(dp ? { dp_clip_fraction: dpStats.examples > 0 ? dpStats.clipped / dpStats.examples : 0, dp_expected_batch: expectedBatch } : {}),
    };
    return { adapter: adapter.download(start), trainable: names, numExamples: rows.length, metrics };
  } finally {
    optimizer.dispose();
    adapter.dispose();
  }
}
