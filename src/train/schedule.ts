/**
 * Learning-rate schedules: pure functions of the step, kept apart from the training loops (as in nanoGPT's
 * train.py `get_lr`). Steps are 0-based here: step 0 is the first update.
 */
import { TrainError } from './errors.js';

export type LrSchedule =
  | { readonly kind: 'constant'; readonly lr: number }
  | {
      readonly kind: 'cosine';
      readonly lr: number; // peak, reached at the end of warmup
      readonly minLr: number; // floor at the end of decay (nanoGPT: lr / 10)
      readonly warmupSteps: number; // linear ramp from lr/warmupSteps to lr
      readonly decaySteps: number; // cosine from lr down to minLr over steps warmupSteps..decaySteps; minLr after
    };

export function constantLr(lr: number): LrSchedule {
  return Object.freeze({ kind: 'constant', lr });
}

/** Cosine decay with linear warmup over `totalSteps`; defaults: minLr = lr/10, warmup = 5% of the steps. */
export function cosineLr(
  lr: number,
  totalSteps: number,
  opts: { minLr?: number; warmupSteps?: number } = {},
): LrSchedule {
  const warmupSteps = opts.warmupSteps ?? Math.floor(totalSteps * 0.05);
  if (warmupSteps < 0 || warmupSteps > totalSteps) {
    throw new TrainError(`warmup (${warmupSteps}) must be within 0..${totalSteps} steps`, 'bad_option');
  }
  return Object.freeze({ kind: 'cosine', lr, minLr: opts.minLr ?? lr / 10, warmupSteps, decaySteps: totalSteps });
}

/** The learning rate at 0-based `step`. */
export function lrAt(schedule: LrSchedule, step: number): number {
  if (schedule.kind === 'constant') return schedule.lr;
  const { lr, minLr, warmupSteps, decaySteps } = schedule;
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  if (step >= decaySteps) return minLr;
  const span = decaySteps - warmupSteps;
  const ratio = span === 0 ? 1 : (step - warmupSteps) / span;
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio)); // 1 → 0
  return minLr + coeff * (lr - minLr);
}
