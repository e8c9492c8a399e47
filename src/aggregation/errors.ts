/**
 * Errors raised by aggregation. Every one extends AggregationError, so a coordinator can catch them together and use
 * `code` (and, for a rejected update, `clientId`) to decide whether to drop one client or fail the round.
 */
export type AggregationErrorCode =
  | UpdateRejectedError['code']
  | RoundRejectedError['code']
  | AdapterLayoutError['code']
  | StrategyConfigError['code']
  | OptimizerStateError['code'];

export abstract class AggregationError extends Error {
  abstract readonly code: string;
}

/** One client's update cannot be aggregated; the coordinator may move that client to the round's failures. */
export class UpdateRejectedError extends AggregationError {
  override name = 'UpdateRejectedError';
  constructor(
    message: string,
    readonly code:
      | 'missing_tensor'
      | 'unexpected_tensor'
      | 'frozen_tensor'
      | 'shape_mismatch'
      | 'non_finite'
      | 'bad_example_count',
    readonly clientId: string,
    /** The offending tensor, when one is to blame. */
    readonly tensor?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The round as a whole cannot be aggregated (no example weight at all, or the sum overflowed). */
export class RoundRejectedError extends AggregationError {
  override name = 'RoundRejectedError';
  constructor(
    message: string,
    readonly code: 'no_examples' | 'non_finite_aggregate',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The global adapter does not have the layout the strategy needs (e.g. a lora_A without its lora_B). */
export class AdapterLayoutError extends AggregationError {
  override name = 'AdapterLayoutError';
  constructor(
    message: string,
    readonly code: 'unpaired_factor' | 'rank_mismatch',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An invalid strategy or server-optimizer configuration, caught at construction. */
export class StrategyConfigError extends AggregationError {
  override name = 'StrategyConfigError';
  readonly code = 'bad_config';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Server-optimizer state that cannot be loaded: another optimizer's, or malformed. */
export class OptimizerStateError extends AggregationError {
  override name = 'OptimizerStateError';
  constructor(
    message: string,
    readonly code: 'wrong_optimizer' | 'bad_state',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
