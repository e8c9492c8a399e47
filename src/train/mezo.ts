/**
 * MeZO: zeroth-order SGD with two forward passes per step (Malladi et al. 2023, Algorithm 1; ALGORITHMS.md §3), with
 * FedKSeed's seed pool (§4) and DPZero's private scalar (§4) as options.
 *
 *   s ← next seed (fresh 32-bit, or a uniform draw from the K candidates);  z = z(s) over the trainable tensors
 *   L± = loss(θ ± εz, batch);  g = (L+ − L−) / (2ε);  θ ← θ − lr·g·z;  record (s, g)
 *
 * θ lives on the host (float32). The perturbed adapters θ ± εz are written from the unmodified θ into one reusable
 * scratch copy and uploaded for the forward pass, instead of perturbing θ in place and restoring it: in float32
 * θ + εz − 2εz + εz ≠ θ, and that drift would make θ differ from the replay θ0 − lr·Σ g·z(s) the coordinator runs.
 * z is regenerated from the seed for each use (3× per step) and never stored beyond one tensor's scratch.
 * No tf.grads, no optimizer state: memory ≈ inference (base model + one adapter copy + one batch's activations).
 *
 * DP (DPZero): per-example d_i = (ℓ_i(θ+εz) − ℓ_i(θ−εz)) / (2ε) clipped to [−C, C], summed, divided by the EXPECTED
 * batch size, plus N(0, (2σC/B)²) from a crypto noise source; batches are Poisson-sampled. Seeds never depend on data.
 */
import * as tf from '@tensorflow/tfjs';
import type { GPT2 } from '../model/gpt2.js';
import { toTf, validateAdapter, type LoraConfig } from '../model/lora.js';
import { dpZeroScalar } from '../privacy/sample-level.js';
import { cloneTensors, type HostTensor, type TensorMap } from '../tensors/host.js';
import { lossWindow, type DpSgdOptions } from './backprop.js';
import { gatherBatch, PoissonBatches, seededUniform, ShuffledBatches, type BatchSampler, type HostBatch } from './batches.js';
import { TrainError } from './errors.js';
import { batchTensors, crossEntropyPerExample } from './loss.js';
import { addNoise, scratchFor, writePerturbed } from './perturb.js';
import { candidateSeeds, seedStream, type SeedScalar } from './seed-pool.js';
import { rowsOf, trainableNames, type BaseTrainOptions, type LocalTrainResult, type TrainerData } from './types.js';

export interface MezoOptions extends BaseTrainOptions {
  /** Perturbation scale ε; MeZO's LoRA reference 1e-2, useful range 1e-3 .. 1e-2. */
  readonly eps: number;
  /** FedKSeed: draw every step's seed from the K candidates of this public run seed. */
  readonly seedPool?: { readonly runSeed: string; readonly k: number };
}

/**
 * DPZero's parameters (ALGORITHMS.md §4), the same fields as backprop's DP-SGD: `clip` bounds each example's
 * projected scalar |d_i|; σ comes from the accountant; batches are Poisson(q), so `batchSize` is ignored.
 */
export type MezoDp = DpSgdOptions;

export interface MezoResult extends LocalTrainResult {
  /** One (seed, g) per step, in step order: the whole update, given the start adapter and lr. */
  readonly trace: SeedScalar[];
}

/** Per-example cross-entropy and hits of the classifier. */
export interface BatchStats {
  readonly losses: Float64Array; // [B]
  readonly correct: number; // examples whose argmax logit equals the label
}

/** Forward pass of the classifier at adapter `tensors` on `batch`. Allocates nothing that outlives the call. */
export function classifyStats(model: GPT2, lora: LoraConfig, tensors: ReadonlyMap<string, tf.Tensor>, batch: HostBatch): BatchStats {
  if (batch.size === 0) return { losses: new Float64Array(0), correct: 0 };
  const [losses, hits] = tf.tidy(() => {
    const { ids, mask, labels } = batchTensors(batch);
    const logits = model.classify(ids, mask, { config: lora, tensors }); // [B, L]
    const hit = tf.equal(tf.argMax(logits, 1), labels).toFloat(); // [B]
    return [crossEntropyPerExample(logits, labels).dataSync(), hit.dataSync()];
  });
  let correct = 0;
  for (const h of hits) correct += h;
  return { losses: Float64Array.from(losses), correct };
}

function mean(xs: Float64Array): number {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length === 0 ? 0 : s / xs.length;
}

/**
 * A MeZO learner over one host adapter: the unit the trainer loops and the benchmark (src/bench) times. Frozen
 * tensors are uploaded once; `dispose()` frees them.
 */
export class MezoLearner {
  readonly names: string[]; // trainable tensor names (adapter order)
  private readonly theta: Map<string, HostTensor>;
  private readonly scratch: Map<string, HostTensor>;
  private readonly frozen: Map<string, tf.Tensor>;

  constructor(
    private readonly model: GPT2,
    private readonly lora: LoraConfig,
    start: TensorMap,
    trainable: BaseTrainOptions['trainable'],
  ) {
    this.theta = cloneTensors(start);
    this.names = trainableNames(start.keys(), trainable);
    const train = new Set(this.names);
    this.scratch = scratchFor(this.theta, this.names);
    this.frozen = toTf(new Map([...this.theta].filter(([n]) => !train.has(n))));
  }

  /** The adapter now (a copy). */
  adapter(): Map<string, HostTensor> {
    return cloneTensors(this.theta);
  }

  /** Per-example stats at θ + c·z(seed) (c = 0: at θ). */
  statsAt(batch: HostBatch, seed: number, c: number): BatchStats {
    writePerturbed(this.theta, this.scratch, this.names, seed, c);
    const trained = toTf(this.scratch);
    try {
      return classifyStats(this.model, this.lora, new Map([...this.frozen, ...trained]), batch);
    } finally {
      for (const t of trained.values()) t.dispose();
    }
  }

  /**
   * One step: two forward passes, the projected gradient, the update. `project` turns the per-example scalars
   * d_i into g (default: their mean, which equals (L+ − L−)/(2ε)). Returns the record and the batch loss (L+ + L−)/2.
   */
  step(
    batch: HostBatch,
    seed: number,
    eps: number,
    lr: number,
    project: (d: Float64Array) => number = mean,
  ): SeedScalar & { loss: number } {
    const plus = this.statsAt(batch, seed, eps).losses;
    const minus = this.statsAt(batch, seed, -eps).losses;
    const d = new Float64Array(plus.length);
    for (let i = 0; i < d.length; i++) d[i] = (plus[i]! - minus[i]!) / (2 * eps);
    const g = project(d);
    const loss = (mean(plus) + mean(minus)) / 2;
    if (!Number.isFinite(g) || !Number.isFinite(loss)) {
      throw new TrainError(`MeZO step diverged (loss ${loss}, g ${g}); lower lr or eps`, 'diverged');
    }
    if (g !== 0 && lr !== 0) addNoise(this.theta, this.names, seed, -lr * g);
    return { seed, g, loss };
  }

  /** Frees the uploaded frozen tensors. Idempotent. */
  dispose(): void {
    for (const t of this.frozen.values()) t.dispose();
    this.frozen.clear();
  }
}

function checkOptions(opts: MezoOptions, dp: MezoDp | undefined): void {
  const bad = (msg: string): never => {
    throw new TrainError(msg, 'bad_option');
  };
  if (!Number.isInteger(opts.steps) || opts.steps < 0) bad(`steps must be a non-negative integer, got ${opts.steps}`);
  if (!(opts.eps > 0 && Number.isFinite(opts.eps))) bad(`eps must be positive (MeZO uses 1e-3 .. 1e-2), got ${opts.eps}`);
  if (!(opts.lr >= 0 && Number.isFinite(opts.lr))) bad(`lr must be a non-negative number, got ${opts.lr}`);
  if (dp && !(dp.clip > 0 && dp.noiseMultiplier >= 0)) bad('DPZero needs clip > 0 and noiseMultiplier ≥ 0');
}

/**
 * Trains `start` with MeZO for `opts.steps` steps (constant lr, no weight decay, so the trace replays linearly).
 * Async only to yield to the event loop between steps, like trainBackprop.
 */
export async function trainMezo(
  model: GPT2,
  lora: LoraConfig,
  start: TensorMap,
  data: TrainerData,
  opts: MezoOptions,
  dp?: MezoDp,
): Promise<MezoResult> {
  checkOptions(opts, dp);
  try {
    validateAdapter(start, model.config, lora);
  } catch (err) {
    throw new TrainError(`the start adapter does not fit the model: ${(err as Error).message}`, 'bad_adapter', { cause: err });
  }
  const began = performance.now();
  const rows = rowsOf(data);
  const nextSeed = seedStream(opts.seed, opts.seedPool && candidateSeeds(opts.seedPool.runSeed, opts.seedPool.k));
  let sampler: BatchSampler;
  let project: ((d: Float64Array) => number) | undefined;
  const expectedBatch = dp ? dp.sampleRate * rows.length : 0;
  if (dp) {
    sampler = new PoissonBatches(rows, dp.sampleRate, seededUniform(`poisson:${opts.seed}`));
    project = (d) => dpZeroScalar(d, dp.clip, dp.noiseMultiplier, expectedBatch, dp.noise);
  } else {
    sampler = new ShuffledBatches(rows, opts.batchSize, opts.seed);
  }
  const learner = new MezoLearner(model, lora, start, opts.trainable);
  const trace: SeedScalar[] = [];
  const losses: number[] = [];
  let seen = 0;
  try {
    for (let step = 0; step < opts.steps; step++) {
      const batch = gatherBatch(data, sampler.next());
      const r = learner.step(batch, nextSeed(), opts.eps, opts.lr, project);
      trace.push({ seed: r.seed, g: r.g });
      if (batch.size > 0) losses.push(r.loss);
      seen += batch.size;
      opts.onStep?.({ step: step + 1, steps: opts.steps, loss: r.loss, lr: opts.lr, batchSize: batch.size });
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const window = lossWindow(losses);
    const metrics = {
      loss_before: window.before,
      loss_after: window.after,
      steps: opts.steps,
      seconds: (performance.now() - began) / 1000,
      examples_seen: seen,
      ...(dp ? { dp_expected_batch: expectedBatch } : {}),
    };
    return { adapter: learner.adapter(), trainable: learner.names, numExamples: rows.length, metrics, trace };
  } finally {
    learner.dispose();
  }
}
