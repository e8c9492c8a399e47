/**
 * One task's local computation, from the global adapter to the payload to upload, with the core trainers:
 *   - TRAINING_MODE_BACKPROP:   trainBackprop (AdamW; DP-SGD when the task carries sample_dp), dense delta;
 *   - TRAINING_MODE_MEZO_DENSE: trainMezo (two forward passes per step; DPZero with sample_dp), dense delta;
 *   - TRAINING_MODE_ESSA:       evaluateMembers for the task's member seeds, fitness rows (ALGORITHMS.md §5).
 * Under FFA-LoRA (the run's aggregation) lora_A stays frozen and only lora_B and the head train.
 */
import type { EncodedExamples } from '../data/encode.js';
import type { GPT2 } from '../model/gpt2.js';
import { validateAdapter, type LoraConfig, type LoraTarget } from '../model/lora.js';
import type { NoiseSource } from '../privacy/gaussian.js';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { trainBackprop, type DpSgdOptions } from '../train/backprop.js';
import { gatherBatch, ShuffledBatches } from '../train/batches.js';
import { batchFitness, DEFAULT_ESSA, essaInit, evaluateMembers } from '../train/essa.js';
import { trainMezo } from '../train/mezo.js';
import type { LocalTrainResult, StepInfo } from '../train/types.js';
import { rowsOf } from '../train/types.js';
import type { Task, UpdateKind } from '../wire/messages.js';
import { TaskError } from './errors.js';
import { denseDelta, fitnessTensor, privatizeUpdate } from './update.js';

export interface TaskOutput {
  readonly kind: UpdateKind;
  /** Upload tensors in upload order. */
  readonly tensors: Map<string, HostTensor>;
  /** UpdateHeader.num_examples: the local examples behind the update. */
  readonly numExamples: number;
  /** UpdateHeader.metrics: `loss` is the mean local loss the coordinator averages per round. */
  readonly metrics: Record<string, number>;
  readonly withinClipNorm: boolean;
}

export interface TaskInputs {
  readonly model: GPT2;
  /** The global adapter the task names (already verified against its SHA-256). */
  readonly global: TensorMap;
  readonly data: EncodedExamples;
  /** Gaussian source for DP noise (node:crypto's gaussianNoise in production). */
  readonly noise: NoiseSource;
  /** Progress in [0, 1], for heartbeats. */
  readonly onProgress?: (fraction: number) => void;
}

/** The LoRA layout the task describes, for the model it runs on. */
export function loraOfTask(task: Task): LoraConfig {
  if (!task.lora) throw new TaskError(`task ${task.taskId} has no LoRA config`);
  return Object.freeze({
    r: task.lora.rank,
    alpha: task.lora.alpha,
    targets: task.lora.targetModules as LoraTarget[],
    numLabels: task.labels.length,
    seed: task.lora.initSeed,
  });
}

function finiteMetrics(m: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (Number.isFinite(v)) out[k] = v;
  return out;
}

/** Runs the task's mode; TaskError for a mode or task this client cannot run. Trainer errors propagate. */
export async function computeUpdate(task: Task, inputs: TaskInputs): Promise<TaskOutput> {
  const lora = loraOfTask(task);
  try {
    validateAdapter(inputs.global, inputs.model.config, lora);
  } catch (err) {
    throw new TaskError(`the fetched adapter does not fit the task's base model and LoRA config: ${(err as Error).message}`, 'bad_task', { cause: err });
  }
  if (task.mode === 'TRAINING_MODE_ESSA') return essaFitness(task, lora, inputs);
  if (task.mode !== 'TRAINING_MODE_BACKPROP' && task.mode !== 'TRAINING_MODE_MEZO_DENSE') {
    throw new TaskError(`task mode ${task.mode} is not supported by this client (it runs backprop, mezo dense and essa)`, 'unsupported_mode');
  }
  const training = task.training;
  if (!training || training.steps < 1) throw new TaskError(`task ${task.taskId} has no training steps`);
  const sample = task.privacy?.sampleDp;
  const dp: DpSgdOptions | undefined = sample
    ? { clip: sample.clipNorm, noiseMultiplier: sample.noiseMultiplier, sampleRate: sample.samplingRate, noise: inputs.noise }
    : undefined;
  const common = {
    steps: training.steps,
    batchSize: training.batchSize,
    lr: training.learningRate,
    trainable: task.lora?.aggregation === 'AGGREGATION_MODE_FFA' ? ('ffa' as const) : ('lora' as const),
    seed: training.seed,
    onStep: (s: StepInfo) => inputs.onProgress?.(s.step / s.steps),
  };
  let result: LocalTrainResult;
  if (task.mode === 'TRAINING_MODE_BACKPROP') {
    result = await trainBackprop(inputs.model, lora, inputs.global, inputs.data, { ...common, weightDecay: training.weightDecay }, dp);
  } else {
    if (!task.mezo) throw new TaskError(`MeZO task ${task.taskId} has no mezo parameters`);
    result = await trainMezo(inputs.model, lora, inputs.global, inputs.data, { ...common, eps: task.mezo.eps }, dp);
  }
  const delta = denseDelta(result.adapter, inputs.global, task.uploadTensors);
  const update = privatizeUpdate(delta, task.privacy, inputs.noise);
  const metrics = finiteMetrics({
    ...result.metrics,
    loss: result.metrics.loss_after,
    update_norm: update.norm,
    clipped: update.clipped ? 1 : 0,
  });
  return { kind: 'UPDATE_KIND_DENSE', tensors: update.tensors, numExamples: result.numExamples, metrics, withinClipNorm: update.withinClipNorm };
}

/** ESSA client side: F(s ± σε_i) on one shuffled batch of eval_examples local examples, for each member seed. */
function essaFitness(task: Task, lora: LoraConfig, inputs: TaskInputs): TaskOutput {
  const essa = task.essa;
  if (!essa || essa.memberSeeds.length === 0) throw new TaskError(`ESSA task ${task.taskId} has no member seeds`);
  const started = performance.now();
  const rows = rowsOf(inputs.data);
  const size = Math.min(rows.length, essa.evalExamples > 0 ? essa.evalExamples : rows.length);
  const batch = gatherBatch(inputs.data, new ShuffledBatches(rows, size, task.training?.seed ?? 0).next());
  const kind = essa.fitness === 'accuracy' ? 'accuracy' : 'loss'; // "neg_loss": the fitness is −loss
  const sigma = essa.sigma > 0 ? essa.sigma : DEFAULT_ESSA.sigma;
  const state = essaInit(inputs.global, { ...DEFAULT_ESSA, sigma, topFraction: essa.topFraction > 0 ? essa.topFraction : 1 });
  const fitness = batchFitness(inputs.model, lora, batch, kind);
  const records = evaluateMembers(state, inputs.global, essa.memberSeeds, fitness, sigma);
  inputs.onProgress?.(1);
  const mean = records.reduce((a, r) => a + r.fPlus + r.fMinus, 0) / (2 * records.length);
  const metrics = finiteMetrics({ mean_fitness: mean, ...(kind === 'loss' ? { loss: -mean } : {}), seconds: (performance.now() - started) / 1000 });
  return { kind: 'UPDATE_KIND_ESSA_FITNESS', tensors: fitnessTensor(records), numExamples: batch.size, metrics, withinClipNorm: false };
}
