/**
 * One task's local computation, from the global adapter to the payload to upload, with the core trainers:
 *   - TRAINING_MODE_BACKPROP:   trainBackprop (AdamW; DP-SGD when the task carries sample_dp), dense delta;
 *   - TRAINING_MODE_MEZO_DENSE: trainMezo (two forward passes per step; DPZero with sample_dp), dense delta;
 *   - TRAINING_MODE_MEZO_SEEDS: trainMezo drawing seeds from the run's K candidates, then the K accumulated scalars
 *                               (FedKSeed, ALGORITHMS.md §4; one 16 KiB tensor for K = 4096);
 *   - TRAINING_MODE_ESSA:       the task's members around the global adapter in the run's ESSA basis (essa-basis.ts),
 *                               fitness rows (ALGORITHMS.md §5).
 * Under FFA-LoRA (the run's aggregation) lora_A stays frozen and only lora_B and the head train.
 */
import type { EncodedExamples } from '../data/encode.js';
import type { GPT2 } from '../model/gpt2.js';
import { validateAdapter, type LoraConfig, type LoraTarget } from '../model/lora.js';
import type { NoiseSource } from '../privacy/gaussian.js';
import { globalNorm, type HostTensor, type TensorMap } from '../tensors/host.js';
import { trainBackprop, type DpSgdOptions } from '../train/backprop.js';
import { gatherBatch, ShuffledBatches } from '../train/batches.js';
import { batchFitness, DEFAULT_ESSA } from '../train/essa.js';
import { essaBasisFromTensors, evaluateBasisMembers, type EssaBasis } from '../train/essa-basis.js';
import { trainMezo, type MezoResult } from '../train/mezo.js';
import { accumulate, candidateSeeds } from '../train/seed-pool.js';
import type { LocalTrainResult, StepInfo } from '../train/types.js';
import { rowsOf, trainableNames } from '../train/types.js';
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
  /** ESSA tasks: the basis payload the task names (EssaParams.basis_sha256), already verified against its SHA-256. */
  readonly essaBasis?: TensorMap;
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
  const seeds = task.mode === 'TRAINING_MODE_MEZO_SEEDS';
  if (task.mode !== 'TRAINING_MODE_BACKPROP' && task.mode !== 'TRAINING_MODE_MEZO_DENSE' && !seeds) {
    throw new TaskError(`task mode ${task.mode} is not supported by this client (it runs backprop, mezo dense and seeds, and essa)`, 'unsupported_mode');
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
    const pool = seeds ? { runSeed: task.mezo.poolSeed, k: task.mezo.seedPoolSize } : undefined;
    if (pool && !(pool.k >= 1 && pool.runSeed !== '')) throw new TaskError(`seed task ${task.taskId} names no seed pool (pool_seed, seed_pool_size)`, 'bad_task');
    const mezo = await trainMezo(inputs.model, lora, inputs.global, inputs.data, { ...common, eps: task.mezo.eps, ...(pool ? { seedPool: pool } : {}) }, dp);
    if (pool) return seedScalarsOutput(task, inputs, mezo, candidateSeeds(pool.runSeed, pool.k));
    result = mezo;
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

/**
 * The FedKSeed upload: the K accumulated scalars (scaled by min(1, C/‖δ‖) under a central clip norm C, which clips
 * the dense delta δ = −lr · Σ scalars · z exactly, since δ is linear in them). Local DP noise on scalars is not a
 * mechanism this protocol defines, so such a task is refused.
 */
function seedScalarsOutput(task: Task, inputs: TaskInputs, result: MezoResult, seeds: Uint32Array): TaskOutput {
  if ((task.privacy?.localNoiseMultiplier ?? 0) > 0) throw new TaskError('seed uploads cannot carry local DP noise; the coordinator should not assign this mode under local DP', 'bad_task');
  const scalars = accumulate(result.trace, seeds);
  const clipNorm = task.privacy?.clipNorm ?? 0;
  let norm = 0;
  if (clipNorm > 0) {
    const trainable = trainableNames(inputs.global.keys(), task.lora?.aggregation === 'AGGREGATION_MODE_FFA' ? 'ffa' : 'lora');
    norm = globalNorm(denseDelta(result.adapter, inputs.global, trainable));
    if (norm > clipNorm) for (let i = 0; i < scalars.length; i++) scalars[i] = scalars[i]! * (clipNorm / norm);
  }
  const metrics = finiteMetrics({ ...result.metrics, loss: result.metrics.loss_after, ...(clipNorm > 0 ? { update_norm: norm, clipped: norm > clipNorm ? 1 : 0 } : {}) });
  return {
    kind: 'UPDATE_KIND_SEED_SCALARS',
    tensors: new Map([['seed_scalars', { shape: [scalars.length], data: scalars }]]),
    numExamples: result.numExamples,
    metrics,
    withinClipNorm: clipNorm > 0 && norm <= clipNorm,
  };
}

/** ESSA client side: F(member i±) on one shuffled batch of eval_examples local examples, for each member seed. */
function essaFitness(task: Task, lora: LoraConfig, inputs: TaskInputs): TaskOutput {
  const essa = task.essa;
  if (!essa || essa.memberSeeds.length === 0) throw new TaskError(`ESSA task ${task.taskId} has no member seeds`);
  const started = performance.now();
  const rows = rowsOf(inputs.data);
  const size = Math.min(rows.length, essa.evalExamples > 0 ? essa.evalExamples : rows.length);
  const batch = gatherBatch(inputs.data, new ShuffledBatches(rows, size, task.training?.seed ?? 0).next());
  const kind = essa.fitness === 'accuracy' ? 'accuracy' : 'loss'; // "neg_loss": the fitness is −loss
  const sigma = essa.sigma > 0 ? essa.sigma : DEFAULT_ESSA.sigma;
  if (!inputs.essaBasis) throw new TaskError(`ESSA task ${task.taskId}: the basis it names (basis_sha256) was not fetched`, 'bad_task');
  let basis: EssaBasis;
  try {
    basis = essaBasisFromTensors(inputs.essaBasis);
  } catch (err) {
    throw new TaskError(`ESSA task ${task.taskId}: the fetched basis is unusable: ${(err as Error).message}`, 'bad_task', { cause: err });
  }
  const fitness = batchFitness(inputs.model, lora, batch, kind);
  const records = evaluateBasisMembers(basis, inputs.global, essa.memberSeeds, fitness, sigma);
  inputs.onProgress?.(1);
  const mean = records.reduce((a, r) => a + r.fPlus + r.fMinus, 0) / (2 * records.length);
  const metrics = finiteMetrics({ mean_fitness: mean, ...(kind === 'loss' ? { loss: -mean } : {}), seconds: (performance.now() - started) / 1000 });
  return { kind: 'UPDATE_KIND_ESSA_FITNESS', tensors: fitnessTensor(records), numExamples: batch.size, metrics, withinClipNorm: false };
}
