/**
 * Reconnect and retry delays: exponential backoff with jitter, capped. Jitter spreads a fleet that lost the same
 * coordinator at the same instant, so a restarted coordinator is not hit by every client in the same millisecond.
 * Pure: the random source is injected.
 */

export interface BackoffConfig {
  /** 250: delay ceiling of the first retry, ms. */
  readonly initialMs: number;
  /** 5000: no delay ever exceeds this, however many attempts failed. */
  readonly maxMs: number;
  /** 2: growth of the ceiling per failed attempt. */
  readonly multiplier: number;
  /** 0.5: the delay is uniform in [(1 − jitter)·ceiling, ceiling] ("equal jitter" at 0.5). */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffConfig = Object.freeze({ initialMs: 250, maxMs: 5000, multiplier: 2, jitter: 0.5 });

/** The ceiling of retry number `attempt` (0 = first retry): min(maxMs, initialMs · multiplier^attempt). */
export function backoffCeiling(attempt: number, config: BackoffConfig = DEFAULT_BACKOFF): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError(`attempt must be a non-negative integer, got ${attempt}`);
  // Stop multiplying once past the cap, so a long outage never overflows to Infinity.
  let ceiling = config.initialMs;
  for (let i = 0; i < attempt && ceiling < config.maxMs; i++) ceiling *= config.multiplier;
  return Math.min(config.maxMs, ceiling);
}

/** The jittered delay of retry `attempt`; `random` returns values in [0, 1). */
export function backoffDelay(attempt: number, random: () => number, config: BackoffConfig = DEFAULT_BACKOFF): number {
  const ceiling = backoffCeiling(attempt, config);
  return Math.round(ceiling * (1 - config.jitter * random()));
}

/** Consecutive-failure counter over backoffDelay: `next()` after each failure, `reset()` after a success. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly random: () => number,
    private readonly config: BackoffConfig = DEFAULT_BACKOFF,
  ) {}

  /** Failures since the last success. */
  get failures(): number {
    return this.attempt;
  }

  next(): number {
    return backoffDelay(this.attempt++, this.random, this.config);
  }

  reset(): void {
    this.attempt = 0;
  }
}
