/**
 * The inverse of the accountant: the noise multiplier σ that keeps `steps` Poisson-subsampled Gaussian releases at
 * rate q within a target (ε, δ), by bisection (as opacus `accountants/utils.py:get_noise_multiplier`). ε(σ) is
 * non-increasing in σ, so bisection brackets the smallest adequate σ; the upper end of the bracket is returned, so the
 * result never overshoots the target ε, and it is within `relativeTolerance` of the smallest σ that would do.
 */
import { InvalidPrivacyParameterError } from './errors.js';
import { type Conversion, DEFAULT_ORDERS, checkDelta, conversionOffset, epsilonOf } from './rdp.js';

export interface CalibrationResult {
  /** The noise multiplier: std of the noise divided by the L2 sensitivity. */
  readonly sigma: number;
  /** ε actually achieved at `sigma` (≤ the target). */
  readonly epsilon: number;
  /** The RDP order achieving `epsilon`. */
  readonly order: number;
}

/** Above this σ the search gives up: such a target is unreachable in practice (and a typo more likely). */
const MAX_SIGMA = 1e6;

export function sigmaForEpsilon(args: {
  targetEpsilon: number;
  delta: number;
  q: number;
  steps: number;
  orders?: readonly number[];
  conversion?: Conversion;
  /** Stop when the bracket [lo, hi] satisfies hi − lo ≤ relativeTolerance · hi; default 1e-4. */
  relativeTolerance?: number;
}): CalibrationResult {
  const { targetEpsilon, delta, q, steps, orders = DEFAULT_ORDERS, conversion = 'improved' } = args;
  const relativeTolerance = args.relativeTolerance ?? 1e-4;
  if (!(targetEpsilon > 0) || targetEpsilon === Infinity) {
    throw new InvalidPrivacyParameterError(`target ε must be finite and > 0, got ${targetEpsilon}`);
  }
  checkDelta(delta);
  if (!(q > 0 && q <= 1)) throw new InvalidPrivacyParameterError(`sampling rate q must be in (0, 1], got ${q}`);
  if (!Number.isInteger(steps) || steps < 1) {
    throw new InvalidPrivacyParameterError(`steps must be a positive integer, got ${steps}`);
  }
  if (!(relativeTolerance > 0 && relativeTolerance < 1)) {
    throw new InvalidPrivacyParameterError(`relativeTolerance must be in (0, 1), got ${relativeTolerance}`);
  }
  const eps = (sigma: number) => epsilonOf({ q, noiseMultiplier: sigma, steps, delta, orders, conversion });
  // Short of making RDP vanish (σ → ∞), the conversion's δ-term stays: below it only larger orders can help.
  const floor = Math.max(0, Math.min(...orders.map((a) => conversionOffset(a, delta, conversion))));
  if (targetEpsilon <= floor) {
    throw new InvalidPrivacyParameterError(
      `target ε=${targetEpsilon} is below ${floor.toPrecision(4)}, the smallest ε these RDP orders (max ${Math.max(...orders)}) ` +
        `can certify at δ=${delta} whatever the noise; raise the target or δ, or add larger orders`,
    );
  }

  let lo = 0;
  let hi = 1;
  let atHi = eps(hi);
  while (atHi.epsilon > targetEpsilon) {
    lo = hi;
    hi *= 2;
    if (hi > MAX_SIGMA) {
      throw new InvalidPrivacyParameterError(
        `no noise multiplier up to ${MAX_SIGMA} reaches ε ≤ ${targetEpsilon} at δ=${delta} (q=${q}, ${steps} steps); ` +
          'raise the target or lower q or steps',
      );
    }
    atHi = eps(hi);
  }
  while (hi - lo > relativeTolerance * hi) {
    const mid = (lo + hi) / 2;
    const atMid = eps(mid);
    if (atMid.epsilon <= targetEpsilon) {
      hi = mid;
      atHi = atMid;
    } else {
      lo = mid;
    }
  }
  return { sigma: hi, epsilon: atHi.epsilon, order: atHi.order };
}
