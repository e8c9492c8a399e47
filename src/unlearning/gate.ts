/**
 * O3's gate (ALGORITHMS.md §6): the detector's combined score z(x) mapped to w(x) ∈ [0, 1], the weight of request t's
 * unlearning adapter for input x: h = W x + utility LoRA + Σ_t w_t(x)·(α/r) B_t A_t x.
 *
 * w(x) = σ(k·(z − z₀)), calibrated from the score distributions of the forget data (in) and generic inputs (out):
 * w = `low` at out's `outQuantile` score and w = `high` at in's `inQuantile` score, so at most 1 − outQuantile of
 * generic inputs get a weight above `low` and at least 1 − inQuantile of forget inputs one above `high`. When the
 * detector does not separate that well, retained accuracy comes first (calibrateGate).
 *
 * The forget samples themselves are recognised apart from z: an input whose nearest centred bank cosine is ≥
 * `memberCos` IS a forget sample (or a near-verbatim copy), and gets w = 1. Folding that into z does not work: with a
 * detector whose AUROC on unseen inputs is ~0.6–0.7 (SpamAssassin groups, tiny base), the calibrated combination
 * weights the cosine term too little for an exact match to stand out, or even negatively.
 *
 * Below `cutoff` the weight is exactly 0, so serving can skip an adapter for the input altogether; the reference gate
 * never drops below 0.12, which is why it costs retained accuracy.
 */
import { UnlearningError } from './errors.js';
import { quantile } from './stats.js';

export interface GateConfig {
  readonly outQuantile: number; // generic inputs at or below this quantile get w ≤ low
  readonly inQuantile: number; // held-in forget inputs at or above this quantile get w ≥ high
  readonly low: number; // the weight at the out anchor
  readonly high: number; // the weight at the in anchor
  readonly cutoff: number; // weights below this are exactly 0
  readonly memberCos: number; // nearest centred bank cosine at or above which the input is a forget sample: w = 1
}

export const DEFAULT_GATE: GateConfig = Object.freeze({
  outQuantile: 0.99,
  inQuantile: 0.05,
  low: 0.01,
  high: 0.99,
  cutoff: 1e-3,
  memberCos: 0.999, // an exact copy scores 1 up to float32 rounding; 0.999 also takes near-verbatim resends
});

export interface Gate {
  readonly center: number; // z₀: w = ½ here
  readonly slope: number; // k > 0
  readonly cutoff: number;
  readonly memberCos: number;
}

const logit = (p: number): number => Math.log(p / (1 - p));

function validate(c: GateConfig): void {
  const inUnit = (v: number): boolean => v > 0 && v < 1;
  if (![c.outQuantile, c.inQuantile, c.low, c.high].every(inUnit)) {
    throw new UnlearningError('gate quantiles and anchor weights must lie strictly between 0 and 1', 'bad_option');
  }
  if (!(c.low < c.high)) throw new UnlearningError(`gate low (${c.low}) must be below high (${c.high})`, 'bad_option');
  if (!(c.cutoff >= 0 && c.cutoff < c.low)) throw new UnlearningError(`gate cutoff must be in [0, low), got ${c.cutoff}`, 'bad_option');
  if (!(c.memberCos > 0 && c.memberCos <= 1)) throw new UnlearningError(`gate memberCos must be in (0, 1], got ${c.memberCos}`, 'bad_option');
}

/**
 * Fits the gate to detector scores of held-in forget examples (cross-fitted: how unseen forget-like inputs score) and
 * of generic inputs. The low anchor always sits at the generic quantile: it bounds how many retained inputs the
 * adapter touches. The high anchor is the held-in quantile when it clears the low one, otherwise one generic spread
 * (out's outQuantile − its median) above it: a detector that separates poorly gates fewer unseen inputs, never more
 * retained ones.
 */
export function calibrateGate(heldInScores: ArrayLike<number>, outScores: ArrayLike<number>, config: GateConfig = DEFAULT_GATE): Gate {
  validate(config);
  if (heldInScores.length === 0 || outScores.length === 0) throw new UnlearningError('gate calibration needs forget and generic scores', 'bad_data');
  const zOut = quantile(outScores, config.outQuantile);
  const inAnchor = quantile(heldInScores, config.inQuantile);
  const zIn = inAnchor > zOut ? inAnchor : zOut + Math.max(zOut - quantile(outScores, 0.5), 1e-6);
  // σ(k(zOut − z₀)) = low and σ(k(zIn − z₀)) = high
  const slope = (logit(config.high) - logit(config.low)) / (zIn - zOut);
  const center = zOut - logit(config.low) / slope;
  return { center, slope, cutoff: config.cutoff, memberCos: config.memberCos };
}

/** w for one input: 1 for a forget sample itself (nearest bank cosine ≥ memberCos), else σ(k(z − z₀)), 0 below cutoff. */
export function gateWeight(gate: Gate, z: number, nearestCos = -2): number {
  if (nearestCos >= gate.memberCos) return 1;
  const w = 1 / (1 + Math.exp(-gate.slope * (z - gate.center)));
  return w < gate.cutoff ? 0 : w;
}
