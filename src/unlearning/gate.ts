/**
 * O3's gate (ALGORITHMS.md §6): the detector's combined score z(x) mapped to w(x) ∈ [0, 1], the weight of request t's
 * unlearning adapter for input x: h = W x + utility LoRA + Σ_t w_t(x)·(α/r) B_t A_t x.
 *
 * w(x) = σ(k·(z − z₀)), calibrated from the score distributions of the forget data (in) and generic inputs (out):
 * w = `low` at out's `outQuantile` score and w = `high` at in's `inQuantile` score, so at most 1 − outQuantile of
 * generic inputs get a weight above `low` and at least 1 − inQuantile of forget inputs one above `high`. When the
 * detector does not separate that well, the gate spends a fixed budget of retained inputs: w = ½ at the generic
 * inputs' 1 − retainBudget quantile (calibrateGate). Each retained input the adapter takes over costs its label with
 * probability about ½ (the replacement targets are a random label), so a budget of 3% bounds the retained accuracy
 * drop near 1.5 points while letting through every unseen forget-like input that scores above that quantile.
 *
 * The forget samples themselves are recognised apart from z: an input whose nearest centred bank cosine is ≥
 * `memberCos` IS a forget sample (or a near-verbatim copy), and gets w = 1. Folding that into z does not work: with a
 * detector whose AUROC on unseen inputs is ~0.6–0.7 (SpamAssassin groups, tiny base), the calibrated combination
 * weights the cosine term too little for an exact match to stand out, or even negatively.
 *
 * Support: an input whose support distance (mean over layers of its Mahalanobis distance to D_t, detector.ts) exceeds
 * `supportMargin` × the held-in forget examples' `supportQuantile` distance gets w = 0 whatever its score: it is
 * farther from D_t than D_t's own unseen members, and a relative score alone can favour such far-away text.
 * The budget then counts only generic inputs inside the support (the others are 0 anyway).
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
  readonly retainBudget: number; // poor separation: share of generic inputs allowed a weight ≥ ½ …
  readonly budgetLowQuantile: number; // … and generic inputs at or below this quantile get w ≤ low
  readonly supportQuantile: number; // held-in support distances at or below this quantile …
  readonly supportMargin: number; // … times this margin are inside D_t's support
  readonly cutoff: number; // weights below this are exactly 0
  readonly memberCos: number; // nearest centred bank cosine at or above which the input is a forget sample: w = 1
}

export const DEFAULT_GATE: GateConfig = Object.freeze({
  outQuantile: 0.99,
  inQuantile: 0.05,
  low: 0.01,
  high: 0.99,
  retainBudget: 0.03,
  // The ramp from low to ½ spans the generic inputs' 90th–97th percentiles: the rest of them, and text as unlike D_t
  // as they are, get 0 (a ramp from the median let a tenth of ordinary inputs through at weights 0.05–0.5).
  budgetLowQuantile: 0.9,
  supportQuantile: 0.99,
  supportMargin: 1.5,
  // Weights this small barely move a prediction, but each input above the cutoff sends its batch down the slower
  // gated path (serving.ts): 0.05 keeps the generic inputs near the budget line on the fast one.
  cutoff: 0.05,
  memberCos: 0.999, // an exact copy scores 1 up to float32 rounding; 0.999 also takes near-verbatim resends
});

export interface Gate {
  readonly center: number; // z₀: w = ½ here
  readonly slope: number; // k > 0
  readonly cutoff: number;
  readonly memberCos: number;
  readonly maxDistance: number; // support distances above this get w = 0
}

/** Detector outputs of a calibration set (detector.ts ScoredSet). */
export interface CalibrationSet {
  readonly scores: ArrayLike<number>;
  readonly distances: ArrayLike<number>;
}

const logit = (p: number): number => Math.log(p / (1 - p));

function validate(c: GateConfig): void {
  const inUnit = (v: number): boolean => v > 0 && v < 1;
  if (![c.outQuantile, c.inQuantile, c.low, c.high].every(inUnit)) {
    throw new UnlearningError('gate quantiles and anchor weights must lie strictly between 0 and 1', 'bad_option');
  }
  if (!(c.retainBudget > 0 && c.retainBudget < 0.5)) throw new UnlearningError(`gate retainBudget must be in (0, 0.5), got ${c.retainBudget}`, 'bad_option');
  if (!(c.budgetLowQuantile >= 0.5 && c.budgetLowQuantile < 1 - c.retainBudget)) {
    throw new UnlearningError(`gate budgetLowQuantile must be in [0.5, 1 − retainBudget), got ${c.budgetLowQuantile}`, 'bad_option');
  }
  if (!(c.low < c.high)) throw new UnlearningError(`gate low (${c.low}) must be below high (${c.high})`, 'bad_option');
  if (!(c.cutoff >= 0 && c.cutoff < 0.5)) throw new UnlearningError(`gate cutoff must be in [0, 0.5), got ${c.cutoff}`, 'bad_option');
  if (!(c.memberCos > 0 && c.memberCos <= 1)) throw new UnlearningError(`gate memberCos must be in (0, 1], got ${c.memberCos}`, 'bad_option');
  if (!(c.supportQuantile > 0 && c.supportQuantile <= 1 && c.supportMargin >= 1)) {
    throw new UnlearningError(`gate supportQuantile must be in (0, 1] and supportMargin ≥ 1, got ${c.supportQuantile} and ${c.supportMargin}`, 'bad_option');
  }
}

/**
 * Fits the gate to the detector outputs of held-in forget examples (cross-fitted: how unseen forget-like inputs score)
 * and of generic inputs. Well separated (in's inQuantile above out's outQuantile, generic inputs inside the support
 * only): the two anchors of the header. Poorly separated: w = ½ where the retained budget is spent and w = low at the
 * supported generic inputs' budgetLowQuantile, or steeper where that leaves the held-in median below `high` — the gate spends its
 * retained budget and no more, whatever the overlap.
 */
export function calibrateGate(heldIn: CalibrationSet, out: CalibrationSet, config: GateConfig = DEFAULT_GATE): Gate {
  validate(config);
  if (heldIn.scores.length === 0 || out.scores.length === 0) throw new UnlearningError('gate calibration needs forget and generic scores', 'bad_data');
  const maxDistance = config.supportMargin * quantile(heldIn.distances, config.supportQuantile);
  const fixed = { cutoff: config.cutoff, memberCos: config.memberCos, maxDistance };
  const inside = Array.from(out.scores).filter((_, i) => out.distances[i]! <= maxDistance);
  const inAnchor = quantile(heldIn.scores, config.inQuantile);
  const inMedian = quantile(heldIn.scores, 0.5);
  if (inside.length === 0) {
    // No generic input reaches D_t's support: the support check alone keeps them out.
    return { center: inAnchor - 1, slope: logit(config.high), ...fixed };
  }
  const zOut = quantile(inside, config.outQuantile);
  if (inAnchor > zOut) {
    // σ(k(zOut − z₀)) = low and σ(k(inAnchor − z₀)) = high
    const slope = (logit(config.high) - logit(config.low)) / (inAnchor - zOut);
    return { center: zOut - logit(config.low) / slope, slope, ...fixed };
  }
  // The budget counts every generic input; those outside the support already get 0.
  const share = (config.retainBudget * out.scores.length) / inside.length;
  const center = share >= 1 ? Math.min(...inside) : quantile(inside, 1 - share);
  const toLow = -logit(config.low) / Math.max(center - quantile(inside, config.budgetLowQuantile), 1e-6);
  const toHigh = inMedian > center ? logit(config.high) / (inMedian - center) : 0;
  return { center, slope: Math.max(toLow, toHigh), ...fixed };
}

/**
 * w for one input: 1 for a forget sample itself (nearest bank cosine ≥ memberCos), 0 outside the support, else
 * σ(k(z − z₀)), 0 below cutoff.
 */
export function gateWeight(gate: Gate, z: number, nearestCos = -2, distance = 0): number {
  if (nearestCos >= gate.memberCos) return 1;
  if (distance > gate.maxDistance) return 0;
  const w = 1 / (1 + Math.exp(-gate.slope * (z - gate.center)));
  return w < gate.cutoff ? 0 : w;
}
