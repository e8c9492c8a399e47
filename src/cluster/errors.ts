/**
 * Errors of the coordinator cluster (leases, shared presence, the cluster connection): named, with a stable `code`
 * (src/wire/status.ts maps 'unavailable' to UNAVAILABLE) and a chained cause.
 */
export type ClusterErrorCode = 'lease_lost' | 'unavailable' | 'invalid_argument';

export class ClusterError extends Error {
  override name = 'ClusterError';
  constructor(
    message: string,
    readonly code: ClusterErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * This process no longer holds (or never held) a run's aggregator lease, so it must not change the run: another
 * coordinator leads it. Thrown by the fence before a state-changing step; the step is abandoned, not retried.
 */
export class LeaseLostError extends ClusterError {
  override name = 'LeaseLostError';
  constructor(
    readonly runId: string,
    readonly holder: string,
    reason: string,
  ) {
    super(`coordinator ${holder} does not hold the lease of run ${runId} (${reason}); the coordinator that does leads the run`, 'lease_lost');
  }
}

/** NATS cannot be reached for a cluster operation (connect, lease, presence, shared admin token). Retryable. */
export class ClusterUnavailableError extends ClusterError {
  override name = 'ClusterUnavailableError';
  constructor(what: string, reason: string, options?: { cause?: unknown }) {
    super(`NATS unavailable (${reason}) while trying to ${what}; check that nats-server with JetStream runs and retry`, 'unavailable', options);
  }
}

/** A cluster setting out of range; the message names it. */
export class ClusterConfigError extends ClusterError {
  override name = 'ClusterConfigError';
  constructor(message: string) {
    super(message, 'invalid_argument');
  }
}
