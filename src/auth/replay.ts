/**
 * Replay policy. A request is fresh when its timestamp is within ±maxSkewMs of the coordinator's clock and its
 * (client, nonce) pair has not been accepted before. Seen nonces are kept in the store (so a restart does not reopen
 * the window) only while their timestamp could still pass the clock check; older ones can be forgotten because the
 * clock check alone refuses them. Pure: the caller passes the current time.
 */
import { AuthConfigError, ClockSkewError } from './errors.js';

export interface NonceWindowConfig {
  /** 300_000 (±5 min): the accepted difference between request timestamp and coordinator clock. */
  readonly maxSkewMs: number;
}

export const DEFAULT_NONCE_WINDOW: NonceWindowConfig = Object.freeze({ maxSkewMs: 300_000 });

export class NonceWindow {
  readonly maxSkewMs: number;

  constructor(config: NonceWindowConfig = DEFAULT_NONCE_WINDOW) {
    if (!Number.isSafeInteger(config.maxSkewMs) || config.maxSkewMs <= 0) {
      throw new AuthConfigError(`maxSkewMs must be a positive integer of milliseconds, got ${config.maxSkewMs}`);
    }
    this.maxSkewMs = config.maxSkewMs;
  }

  /** Throws ClockSkewError unless |timestampMs − nowMs| ≤ maxSkewMs. */
  checkTimestamp(timestampMs: number, nowMs: number): void {
    const skew = timestampMs - nowMs;
    if (Math.abs(skew) > this.maxSkewMs) throw new ClockSkewError(skew, this.maxSkewMs);
  }

  /** Nonces whose request timestamp is below this can be pruned: checkTimestamp already refuses them. */
  pruneCutoff(nowMs: number): number {
    return Math.max(0, nowMs - this.maxSkewMs);
  }
}
