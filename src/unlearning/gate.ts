/**
 * O3's gate (ALGORITHMS.md §6): the detector's combined score z(x) mapped to w(x) ∈ [0, 1], the weight of request t's
 * unlearning adapter for input x: h = W x + utility LoRA + Σ_t w_t(x)·(α/r) B_t A_t x.
 *
 * w(x) = σ(k·(z − z₀)), calibrated from the score distributions of the forget data (in) and generic inputs (out):
 * w = `low` at out's `outQuantile` score and w = `high` at in's `inQuantile` score, so at most 1 − outQuantile of
 * generic inputs get a weight above `low` and at least 1 − inQuantile of forget inputs one above `high`. When the
 * detector does not separate that well, retained accuracy comes first: the low anchor stays and the high anchor moves
 * up (calibrateGate), so fewer unseen forget-like inputs are gated — but the forget samples themselves still are,
 * since each matches its own bank entry. Calibration fails (`inseparable`) only when the forget samples' median score
 * is not above the generic median.
 *
 * Below `cutoff` the weight is exactly 0, so serving can skip an adapter for the input altogether; the reference gate
 * never drops below 0.12, which is why it costs retained accuracy.
 */
import { UnlearningError } from './errors.js';
import { quantile } from './stats.js';

export interface GateConfig {
  readonly outQuantile: number; // generic inputs at or below this quantile get w ≤ low
  readonly inQuantile: number; // forget inputs at or above this quantile get w ≥ high
  readonly low: number; // the weight at the out anchor
  readonly high: number; // the weight at the in anchor
  readonly cutoff: number; // weights below this are exactly 0
}

export const DEFAULT_GATE: GateConfig = Object.freeze({
  outQuantile: 0.99,
  inQuantile: 0.05,
  low: 0.01,
  high: 0.99,
  cutoff: 1e-3,
});

export interface Gate {
  readonly center: number; // z₀: w = ½ here
  readonly slope: number; // k > 0
  readonly cutoff: number;
}

const logit = (p: number): number => Math.log(p / (1 - p));

function validate(c: GateConfig): void {
  const inUnit = (v: number): boolean => v > 0 && v < 1;
  if (![c.outQuantile, c.inQuantile, c.low, c.high].every(inUnit)) {
    throw new UnlearningError('gate quantiles and anchor weights must lie strictly between 0 and 1', 'bad_option');
  }
  if (!(c.low < c.high)) throw new UnlearningError(`gate low (${c.low}) must be below high (${c.high})`, 'bad_option');
  if (!(c.cutoff >= 0 && c.cutoff < c.low)) throw new UnlearningError(`gate cutoff must be in [0, low), got ${c.cutoff}`, 'bad_option');
}

/** The detector scores a gate is calibrated on (each a list of combined scores z). */
export interface GateScores {
  readonly heldIn: ArrayLike<number>; // forget examples scored by statistics fitted without them (cross-fitted)
  readonly members: ArrayLike<number>; // the forget examples scored by the final detector (own bank entry included)
  readonly out: ArrayLike<number>; // generic inputs
}

/**
 * Fits the gate. The low anchor always sits at the generic quantile: it bounds how many retained inputs the adapter
 * touches. The high anchor is the held-in quantile — how unseen forget-like inputs score — when it clears the low
 * one; otherwise the members' quantile, so the forget samples themselves (which must be forgotten) stay gated; failing
 * both, one generic spread (out's outQuantile − its median) above the low anchor.
 */
export function calibrateGate(scores: GateScores, config: GateConfig = DEFAULT_GATE): Gate {
  validate(config);
  if (scores.heldIn.length === 0 || scores.members.length === 0 || scores.out.length === 0) {
    throw new UnlearningError('gate calibration needs forget and generic scores', 'bad_data');
  }
  const zOut = quantile(scores.out, config.outQuantile);
  const outMedian = quantile(scores.out, 0.5);
  const inMedian = quantile(scores.members, 0.5);
  if (!(inMedian > outMedian)) {
    throw new UnlearningError(
      `the detector does not separate the forget data from generic inputs (median scores ${inMedian.toFixed(3)} vs ${outMedian.toFixed(3)}); ` +
        'use more forget examples, other detector layers, or generic inputs that are less like the forget data',
      'inseparable',
    );
  }
  const anchors = [quantile(scores.heldIn, config.inQuantile), quantile(scores.members, config.inQuantile)];
  const zIn = anchors.find((z) => z > zOut) ?? zOut + Math.max(zOut - outMedian, 1e-6);
  // σ(k(zOut − z₀)) = low and σ(k(zIn − z₀)) = high
  const slope = (logit(config.high) - logit(config.low)) / (zIn - zOut);
  const center = zOut - logit(config.low) / slope;
  return { center, slope, cutoff: config.cutoff };
}

/** w(z) for one detector score. */
export function gateWeight(gate: Gate, z: number): number {
  const w = 1 / (1 + Math.exp(-gate.slope * (z - gate.center)));
  return w < gate.cutoff ? 0 : w;
}
