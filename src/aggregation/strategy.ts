/**
 * The aggregation contract, after Flower's `Strategy`: a coordinator hands each round's successes and failures to a
 * strategy and gets back the next global adapter. Strategies are pure (no I/O, no clocks); privacy is a wrapper that
 * implements this same interface around any inner strategy (src/privacy).
 *
 * Tensor names follow the adapter layout of src/model/lora.ts: `h.{i}.{module}.lora_A.weight` (r × d_in),
 * `h.{i}.{module}.lora_B.weight` (d_out × r) and `score.weight` (the classification head).
 */
import type { HostTensor, TensorMap } from '../tensors/host.js';

/** One client's successful local training, as the coordinator verified it. */
export interface ClientUpdate {
  readonly clientId: string;
  /** Local training examples behind this update (the FedAvg weight n_k when DP is off). */
  readonly numExamples: number;
  /** Trained minus global, for exactly the tensors that travel this round. */
  readonly delta: TensorMap;
  /** Client-reported scalars (mean local loss, ...). Informational only. */
  readonly metrics: Readonly<Record<string, number>>;
}

/** A client that was sampled but produced no usable update this round. */
export interface ClientFailure {
  readonly clientId: string;
  readonly reason: string;
}

export interface RoundContext {
  readonly round: number;
  /** The global adapter the clients started from (all tensors, trainable or not). */
  readonly global: TensorMap;
  /** How many clients the round expected (q × population under Poisson sampling). DP divides by this. */
  readonly expectedClients: number;
  /**
   * Memory of at least `bytes` for the next global adapter's tensors, laid back to back in `global`'s order; default
   * tensors/page-aligned.ts pageAlignedBuffer. The coordinator hands over one it faulted in while the clients trained
   * (round-close.ts).
   */
  readonly allocate?: (bytes: number) => ArrayBufferLike;
}

export interface AggregateOutcome {
  /**
   * The next global adapter: the same names and shapes as `RoundContext.global`, in memory of its own (never
   * `RoundContext.global`'s or an update's), which the caller may keep or overwrite.
   */
  readonly global: Map<string, HostTensor>;
  /** Scalars worth logging (norms, clip fraction, noise std, ...). */
  readonly metrics: Readonly<Record<string, number>>;
}

/** Per-round instructions a strategy sends to the clients it sampled (e.g. the clip norm). */
export type ClientInstructions = Readonly<Record<string, number>>;

export interface AggregationStrategy {
  readonly name: string;
  /** Instructions for this round's clients; {} when the strategy needs none. */
  configureRound(round: number): ClientInstructions;
  /**
   * Combines the round's successful updates into the next global adapter. Returning undefined keeps the old global
   * adapter (for example: no results at all). Failures are passed so a strategy can refuse to proceed when too many
   * clients failed.
   */
  aggregate(
    ctx: RoundContext,
    results: readonly ClientUpdate[],
    failures: readonly ClientFailure[],
  ): AggregateOutcome | undefined;
}
