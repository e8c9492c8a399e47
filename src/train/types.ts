/**
 * Types shared by every local trainer (backprop in backprop.ts, MeZO in mezo.ts, ESSA in essa.ts): what trains, what
 * data a trainer reads, and the result it hands to the client / coordinator.
 *
 * Adapter naming (fixed project-wide): `h.{i}.{module}.lora_A.weight` [r, d_in], `h.{i}.{module}.lora_B.weight`
 * [d_out, r], and the classification head `score.weight` [numLabels, nEmbd].
 */
import type { EncodedExamples } from '../data/encode.js';
import type { HostTensor } from '../tensors/host.js';
import { TrainError } from './errors.js';

/**
 * Which adapter tensors train.
 * - `ffa`: FFA-LoRA (Sun et al., ICLR 2024): every lora_A stays frozen at its seeded init; lora_B and score.weight
 *   train. Federated averaging of B is then exact (ALGORITHMS.md §1) and the upload is halved.
 * - `lora`: plain LoRA: lora_A, lora_B and score.weight all train.
 */
export const TRAINABLE_KINDS = ['ffa', 'lora'] as const;
export type Trainable = (typeof TRAINABLE_KINDS)[number];

export type { EncodedExamples };

export function parseTrainable(value: string): Trainable {
  if ((TRAINABLE_KINDS as readonly string[]).includes(value)) return value as Trainable;
  throw new TrainError(`unknown trainable set "${value}"; expected one of ${TRAINABLE_KINDS.join(', ')}`, 'bad_option');
}

/** True for a LoRA down-projection `...lora_A.weight` (frozen under FFA-LoRA). */
export function isLoraA(name: string): boolean {
  return name.endsWith('.lora_A.weight');
}

/** The names of `names` (adapter order kept) that train under `kind`. */
export function trainableNames(names: Iterable<string>, kind: Trainable): string[] {
  const all = [...names];
  return kind === 'lora' ? all : all.filter((n) => !isLoraA(n));
}

/**
 * What a trainer trains on: encoded examples, optionally restricted to a subset of row indices (a client's shard of
 * a shared encoding). A plain `EncodedExamples` is a valid `TrainerData` (all rows).
 */
export interface TrainerData extends EncodedExamples {
  /** Row indices into the encoding; all rows when absent. */
  readonly subset?: readonly number[];
}

/** The row indices a trainer may read: `data.subset` or 0..n−1. */
export function rowsOf(data: TrainerData): readonly number[] {
  if (data.subset) return data.subset;
  return Array.from({ length: data.n }, (_, i) => i);
}

/** Per-step progress, for progress bars and logs (never required for correctness). */
export interface StepInfo {
  readonly step: number; // 1-based
  readonly steps: number;
  readonly loss: number; // this step's batch loss (before the update)
  readonly lr: number;
  readonly batchSize: number; // examples in this step's batch (varies under Poisson sampling)
}

/** Options every trainer understands. Trainer-specific options extend this. */
export interface BaseTrainOptions {
  /** Optimisation steps. */
  readonly steps: number;
  /** Examples per step. Ignored under DP Poisson sampling, where the DP options' rate q sets the expected size q·N. */
  readonly batchSize: number;
  /** Peak learning rate. */
  readonly lr: number;
  /** Which adapter tensors train. */
  readonly trainable: Trainable;
  /** Seed of every reproducible random choice (batch order, perturbation seeds). */
  readonly seed: number;
  /** Called after each step; must not throw. */
  readonly onStep?: (info: StepInfo) => void;
}

/**
 * Scalars every trainer reports. `loss_before` / `loss_after` are the mean batch losses of the first / last
 * max(1, ⌊steps/10⌋) steps, computed on the batches the trainer saw anyway (no extra passes over the data).
 */
export interface TrainMetrics {
  readonly loss_before: number;
  readonly loss_after: number;
  readonly steps: number;
  readonly seconds: number;
  readonly [extra: string]: number;
}

/** What a local trainer returns. Zeroth-order trainers extend it with their (seed, scalar) trace. */
export interface LocalTrainResult {
  /** The full adapter after training (frozen tensors included, unchanged), same names and order as the start. */
  readonly adapter: Map<string, HostTensor>;
  /** Names of the tensors that trained (the ones that travel). */
  readonly trainable: readonly string[];
  /** Training examples available to this trainer (the FedAvg weight n_k). */
  readonly numExamples: number;
  readonly metrics: TrainMetrics;
}
