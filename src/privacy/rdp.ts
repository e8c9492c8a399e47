/**
 * Rényi-DP analysis of the Poisson-subsampled Gaussian mechanism: pure, stateless functions (no I/O, no clocks, no
 * logging), after opacus `accountants/analysis/rdp.py` and TensorFlow Privacy's `rdp_accountant.py`.
 *
 * The mechanism: each record is included with probability q, the included records' contributions (L2 sensitivity 1
 * after clipping) are summed and N(0, σ²) noise is added. Its RDP at order α is log(A_α)/(α−1), where A_α is the α-th
 * moment of the privacy-loss ratio between (1−q)·N(0,σ²) + q·N(1,σ²) and N(0,σ²) (Mironov, Talwar, Zhang 2019,
 * "Rényi Differential Privacy of the Sampled Gaussian Mechanism", §3.3). Everything is summed in log space.
 *
 * @example
 *   const rdp = computeRdp({ q: 0.01, noiseMultiplier: 1, steps: 10_000 });
 *   const { epsilon, order } = epsilonFromRdp({ rdp, delta: 1e-5 });
 */
import { InvalidPrivacyParameterError } from './errors.js';

/** Orders {1 + x/10 : x = 1..99} ∪ {12..63}: the grid opacus and TF Privacy use for DP-SGD. */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 52 }, (_, x) => 12 + x),
]);

/** The series for fractional orders stops once both of its terms fall below e^−30 (as opacus). */
const SERIES_STOP_LOG = -30;
/** A guard, never reached for q ∈ (0, 1), σ > 0 and the orders in use; past it the order is reported as ∞. */
const SERIES_MAX_TERMS = 100_000;
const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);

// ---------------------------------------------------------------------------------------------------------------
// Log-space arithmetic

/** log(e^a + e^b) without overflow. */
export function logAdd(a: number, b: number): number {
  const hi = Math.max(a, b);
  const lo = Math.min(a, b);
  if (lo === -Infinity) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/** log(e^a − e^b) for a ≥ b; NaN when a < b (the caller decides what an impossible difference means). */
export function logSub(a: number, b: number): number {
  if (a < b) return NaN;
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  return a + Math.log(-Math.expm1(b - a));
}

/**
 * log(erfc(x)), accurate to a few ulps for all x, including x far past 26 where erfc itself underflows.
 * x < 0: erfc(x) = 2 − erfc(−x). 0 ≤ x < 2: erfc = 1 − erf with erf's all-positive series
 * erf(x) = (2/√π) e^{−x²} Σ (2x²)^n x / (1·3···(2n+1)). x ≥ 2: the continued fraction
 * erfc(x) = e^{−x²}/√π · 1/(x + ½/(x + 1/(x + (3/2)/(x + ...)))), evaluated by modified Lentz, kept in log space.
 */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return Math.log(2 - Math.exp(logErfc(-x)));
  if (x < 2) return Math.log1p(-erfSeries(x));
  if (x === Infinity) return -Infinity;
  return -x * x - LOG_SQRT_PI - Math.log(erfcContinuedFraction(x));
}

function erfSeries(x: number): number {
  const x2 = 2 * x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= x2 / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

/** f = x + a1/(x + a2/(x + ...)) with a_k = k/2, so that erfc(x) = e^{−x²}/(√π f). */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 5000; k++) {
    const a = k / 2;
    d = x + a * d;
    if (d === 0) d = tiny;
    c = x + a / c;
    if (c === 0) c = tiny;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return f;
}

// ---------------------------------------------------------------------------------------------------------------
// log(A_α) of the sampled Gaussian mechanism (MTZ 2019 §3.3)

/** Integer α: A_α = Σ_{i=0..α} C(α,i) (1−q)^(α−i) q^i exp((i²−i)/(2σ²)). */
function logAIntegerOrder(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  let logBinom = 0; // log C(α, 0)
  let logA = -Infinity;
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log(alpha - i + 1) - Math.log(i);
    const s = logBinom + i * logQ + (alpha - i) * log1mQ + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
  }
  return logA;
}

/**
 * Fractional α: split the integral at z0 = σ² log(1/q − 1) + ½ and expand both halves with the generalized binomial
 * series. C(α, i) alternates in sign once i > α, so the terms are added or subtracted in log space. Returns NaN if
 * rounding ever makes a partial sum negative (never observed; the caller then reports the order as unusable).
 */
function logAFractionalOrder(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const scale = Math.SQRT2 * sigma;
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  let logAbsBinom = 0; // log |C(α, 0)|
  let sign = 1;
  for (let i = 0; i < SERIES_MAX_TERMS; i++) {
    if (i > 0) {
      const factor = (alpha - i + 1) / i; // C(α, i) = C(α, i−1)·(α−i+1)/i
      if (factor < 0) sign = -sign;
      logAbsBinom += Math.log(Math.abs(factor));
    }
    const j = alpha - i;
    const logT0 = logAbsBinom + i * logQ + j * log1mQ;
    const logT1 = logAbsBinom + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / scale);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / scale);
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (sign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Number.isNaN(logA0) || Number.isNaN(logA1)) return NaN;
    if (Math.max(logS0, logS1) < SERIES_STOP_LOG) return logAdd(logA0, logA1);
  }
  return NaN;
}

/**
 * RDP of ONE step of the Poisson-subsampled Gaussian mechanism at order α > 1 (MTZ 2019 §3.3).
 * Edge cases first: q = 0 → 0 (nothing is ever released about anyone); σ = 0 → ∞ (no noise); q = 1 → α/(2σ²) (the
 * plain Gaussian); α = ∞ → ∞. A numerically failed series is reported as ∞, which is always a valid (if useless)
 * bound and simply loses the minimisation over orders.
 */
export function rdpOfStep(args: { q: number; noiseMultiplier: number; order: number }): number {
  const { q, noiseMultiplier: sigma, order: alpha } = args;
  checkStepParameters(q, sigma);
  checkOrder(alpha);
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (alpha === Infinity) return Infinity;
  const logA = Number.isInteger(alpha) ? logAIntegerOrder(q, sigma, alpha) : logAFractionalOrder(q, sigma, alpha);
  if (Number.isNaN(logA)) return Infinity;
  return Math.max(0, logA / (alpha - 1));
}

/**
 * RDP of `steps` compositions of the Poisson-subsampled Gaussian mechanism at each order: steps · rdpOfStep.
 * Composition over rounds with different (q, σ) is the sum of these vectors (RDP adds under composition).
 */
export function computeRdp(args: {
  q: number;
  noiseMultiplier: number;
  steps: number;
  orders?: readonly number[];
}): Float64Array {
  const { q, noiseMultiplier, steps, orders = DEFAULT_ORDERS } = args;
  if (!Number.isInteger(steps) || steps < 0) {
    throw new InvalidPrivacyParameterError(`steps must be a non-negative integer, got ${steps}`);
  }
  const out = new Float64Array(orders.length);
  if (steps === 0) return out;
  orders.forEach((order, k) => {
    const r = rdpOfStep({ q, noiseMultiplier, order });
    out[k] = r * steps;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// RDP → (ε, δ)

/**
 * `improved`: ε = rdp(α) + log((α−1)/α) − (log δ + log α)/(α−1) (Balle et al. 2020, "Hypothesis Testing
 * Interpretations and Rényi Differential Privacy", Thm 21; what opacus and dp_accounting use).
 * `classic`: ε = rdp(α) − log δ/(α−1) (Mironov 2017, Prop. 3; older TF Privacy); kept to compare against references
 * published with it. It is never smaller than `improved`.
 */
export type Conversion = 'improved' | 'classic';

export interface EpsilonResult {
  /** The smallest ε over the orders, clamped at 0 (an (ε, δ) guarantee holds for every larger ε). */
  readonly epsilon: number;
  /** The order that achieved it (NaN when every order gives ∞). */
  readonly order: number;
  /** Set when the best order is the first or last of the grid: a wider grid would give a tighter ε. */
  readonly edge?: 'smallest' | 'largest';
}

/**
 * The tightest (ε, δ)-DP guarantee implied by RDP values `rdp[k]` at `orders[k]`. An order whose RDP is below
 * −log(1 − δ²) certifies ε = 0 outright (as dp_accounting): RDP is non-decreasing in α, so it bounds the KL divergence,
 * and δ ≥ √(1 − e^−KL) (Bretagnolle–Huber) makes the two output distributions (0, δ)-indistinguishable.
 */
export function epsilonFromRdp(args: {
  rdp: ArrayLike<number>;
  delta: number;
  orders?: readonly number[];
  conversion?: Conversion;
}): EpsilonResult {
  const { rdp, delta, orders = DEFAULT_ORDERS, conversion = 'improved' } = args;
  if (rdp.length !== orders.length) {
    throw new InvalidPrivacyParameterError(`got ${rdp.length} RDP values for ${orders.length} orders; they must pair up`);
  }
  checkDelta(delta);
  const klZero = -Math.log1p(-delta * delta);
  let best = Infinity;
  let bestIndex = -1;
  for (let k = 0; k < orders.length; k++) {
    const r = rdp[k]!;
    const eps = r <= klZero ? 0 : r + conversionOffset(orders[k]!, delta, conversion);
    if (eps < best) {
      best = eps;
      bestIndex = k;
    }
  }
  if (bestIndex < 0) return { epsilon: Infinity, order: NaN };
  const result = { epsilon: Math.max(0, best), order: orders[bestIndex]! };
  if (orders.length > 1 && bestIndex === 0) return { ...result, edge: 'smallest' };
  if (orders.length > 1 && bestIndex === orders.length - 1) return { ...result, edge: 'largest' };
  return result;
}

/** ε − rdp(α) under a conversion: what order α adds to any RDP value (the ε that RDP = 0 would give). */
export function conversionOffset(order: number, delta: number, conversion: Conversion = 'improved'): number {
  checkOrder(order);
  const logDelta = Math.log(delta);
  return conversion === 'improved'
    ? Math.log1p(-1 / order) - (logDelta + Math.log(order)) / (order - 1)
    : -logDelta / (order - 1);
}

/** ε of `steps` identical steps: computeRdp then epsilonFromRdp. */
export function epsilonOf(args: {
  q: number;
  noiseMultiplier: number;
  steps: number;
  delta: number;
  orders?: readonly number[];
  conversion?: Conversion;
}): EpsilonResult {
  const { delta, conversion, orders = DEFAULT_ORDERS } = args;
  return epsilonFromRdp({ rdp: computeRdp({ ...args, orders }), delta, orders, ...(conversion && { conversion }) });
}

// ---------------------------------------------------------------------------------------------------------------
// Parameter checks (shared with the accountant and calibration)

export function checkStepParameters(q: number, sigma: number): void {
  if (!(q >= 0 && q <= 1)) {
    throw new InvalidPrivacyParameterError(`sampling rate q must be in [0, 1], got ${q}`);
  }
  if (!(sigma >= 0) || sigma === Infinity) {
    throw new InvalidPrivacyParameterError(`noise multiplier σ must be finite and ≥ 0, got ${sigma}`);
  }
}

export function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) {
    throw new InvalidPrivacyParameterError(`δ must be in (0, 1), got ${delta}`);
  }
}

function checkOrder(alpha: number): void {
  if (!(alpha > 1)) {
    throw new InvalidPrivacyParameterError(`RDP orders must be > 1, got ${alpha}`);
  }
}
