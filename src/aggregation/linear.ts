/**
 * The two strategies that average tensors linearly: new global = global + Σ_k w_k·delta_k over the travelling tensors.
 * They differ only in what travels (updates.ts `travellingTensors`).
 */
import { applyWeightedSum } from './aggregate.js';
import type { AggregateOutcome, AggregationStrategy, ClientFailure, ClientUpdate, RoundContext } from './strategy.js';
import {
  checkFiniteAggregate,
  checkUpdateLayout,
  resolveRoundOptions,
  roundWeights,
  travellingTensors,
  type RoundOptions,
} from './updates.js';

/**
 * FFA-LoRA (Sun et al., "Improving LoRA in Privacy-preserving Federated Learning", ICLR 2024, §4): every lora_A stays
 * frozen at its seeded random init, identical on all nodes, so only lora_B (d_out × r) and the head score.weight
 * (numLabels × nEmbd) train and travel. Because A is shared, Σ_k w_k B_k A = (Σ_k w_k B_k) A: averaging B is exactly
 * averaging the products ΔW_k = (α/r) B_k A, the upload is halved, and DP noise enters linearly. The default.
 *
 * Rejects (UpdateRejectedError) an update that carries a lora_A ('frozen_tensor'), lacks a travelling tensor,
 * has a wrong shape, or holds NaN/±Infinity.
 */
export class FfaStrategy implements AggregationStrategy {
  readonly name = 'ffa';
  readonly options: RoundOptions;

  constructor(options: Partial<RoundOptions> = {}) {
    this.options = resolveRoundOptions(options);
  }

  configureRound(): Record<string, never> {
    return {};
  }

  aggregate(ctx: RoundContext, results: readonly ClientUpdate[], failures: readonly ClientFailure[]): AggregateOutcome | undefined {
    return aggregateLinear(ctx, results, failures, travellingTensors('ffa', ctx.global.keys()), this.options);
  }
}

/**
 * FedAvg applied to LoRA factors: lora_A and lora_B are averaged separately, like Flower, FATE and most other
 * frameworks do. Kept for comparison with them, and NEVER the default: the average of the factors is not the average
 * of the updates, mean_k(B_k)·mean_k(A_k) ≠ mean_k(B_k·A_k) (the cross terms B_j·A_k, j ≠ k, appear), so the global
 * adapter is not what any weighted combination of the clients' adapters would give. Use `ffa` (exact and cheap) or
 * `exact` (re-factored by SVD) instead.
 */
export class FedAvgStrategy implements AggregationStrategy {
  readonly name = 'fedavg';
  readonly options: RoundOptions;

  constructor(options: Partial<RoundOptions> = {}) {
    this.options = resolveRoundOptions(options);
  }

  configureRound(): Record<string, never> {
    return {};
  }

  aggregate(ctx: RoundContext, results: readonly ClientUpdate[], failures: readonly ClientFailure[]): AggregateOutcome | undefined {
    return aggregateLinear(ctx, results, failures, travellingTensors('fedavg', ctx.global.keys()), this.options);
  }
}

/** global + Σ_k w_k·delta_k over `travelling`; undefined (keep the old global) below options.minClients. */
function aggregateLinear(
  ctx: RoundContext,
  results: readonly ClientUpdate[],
  failures: readonly ClientFailure[],
  travelling: readonly string[],
  options: RoundOptions,
): AggregateOutcome | undefined {
  if (results.length < options.minClients) return undefined; // minClients ≥ 1 covers an empty round
  for (const r of results) checkUpdateLayout(ctx.global, travelling, r);
  const weights = roundWeights(results, options.weighting);
  const { global, squaredNorms } = applyWeightedSum(
    ctx.global,
    results.map((r) => r.delta),
    weights,
    travelling,
    ctx.allocate,
  );
  checkFiniteAggregate(results, squaredNorms);
  return {
    global,
    metrics: { clients: results.length, failures: failures.length, update_norm: Math.sqrt([...squaredNorms.values()].reduce((a, b) => a + b, 0)) },
  };
}
