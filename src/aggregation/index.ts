/**
 * Aggregation entry point: the strategy factory the coordinator calls with its config, and the re-exports it needs.
 *
 *   const strategy = createStrategy({ kind: 'ffa', alpha: 16, r: 8, serverOptimizer: { kind: 'fedadam' } });
 *   const upload = travellingTensors('ffa', adapter.keys()); // what clients send
 */
import { StrategyConfigError } from './errors.js';
import { ExactStrategy } from './exact.js';
import { FedAvgStrategy, FfaStrategy } from './linear.js';
import { withServerOptimizer, type ServerOptimizerOptions } from './server-optimizer.js';
import type { AggregationStrategy } from './strategy.js';
import { STRATEGY_KINDS, type StrategyKind, type Weighting } from './updates.js';

export interface StrategyConfig {
  /** Which aggregation: 'ffa' (default choice; exact and cheapest), 'exact' (SVD re-factoring), 'fedavg' (comparison only). */
  readonly kind: StrategyKind;
  /** LoRA α of the adapter (ΔW = (α/r)·B·A). */
  readonly alpha: number;
  /** LoRA rank r of the adapter. */
  readonly r: number;
  /** Fewer successful updates than this keeps the old global adapter. Default 1. */
  readonly minClients?: number;
  /** 'examples' (default, n_k/Σn) or 'equal' (use under DP). */
  readonly weighting?: Weighting;
  /** Optional server optimizer on the pseudo-gradient (Reddi et al. 2021); not with 'exact'. Default: none. */
  readonly serverOptimizer?: ServerOptimizerOptions;
}

export function createStrategy(config: StrategyConfig): AggregationStrategy {
  const { kind, alpha, r, minClients, weighting, serverOptimizer } = config;
  if (!STRATEGY_KINDS.includes(kind)) {
    throw new StrategyConfigError(`unknown aggregation kind ${String(kind)}; expected one of ${STRATEGY_KINDS.join(', ')}`);
  }
  if (!Number.isFinite(alpha) || alpha <= 0) throw new StrategyConfigError(`alpha must be a finite number > 0, got ${alpha}`);
  if (!Number.isInteger(r) || r < 1) throw new StrategyConfigError(`r must be an integer ≥ 1, got ${r}`);
  if (kind === 'exact' && serverOptimizer !== undefined) {
    throw new StrategyConfigError(
      `a server optimizer cannot be combined with 'exact': it re-factors lora_A and lora_B by SVD every round, so ` +
        `moments or steps taken on the factors are meaningless; use 'ffa' with a server optimizer instead`,
    );
  }
  const round = { ...(minClients === undefined ? {} : { minClients }), ...(weighting === undefined ? {} : { weighting }) };
  const inner =
    kind === 'ffa' ? new FfaStrategy(round) : kind === 'fedavg' ? new FedAvgStrategy(round) : new ExactStrategy({ ...round, alpha, r });
  return serverOptimizer === undefined ? inner : withServerOptimizer(inner, serverOptimizer);
}

export { applyUpdate, applyWeightedSum, equalWeights, exampleWeights, foldInto, weightedSum } from './aggregate.js';
export * from './errors.js';
export { ExactStrategy } from './exact.js';
export { FedAvgStrategy, FfaStrategy } from './linear.js';
export {
  ServerOptimizedStrategy,
  ServerOptimizer,
  withServerOptimizer,
  type ServerOptimizerConfig,
  type ServerOptimizerKind,
  type ServerOptimizerOptions,
  type ServerOptimizerState,
} from './server-optimizer.js';
export type * from './strategy.js';
export {
  checkUpdateLayout,
  isLoraA,
  isLoraB,
  travellingTensors,
  type RoundOptions,
  type StrategyKind,
  type Weighting,
} from './updates.js';
