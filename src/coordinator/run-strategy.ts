/**
 * How a run aggregates and what each round costs in privacy: the strategy stack (inner strategy, central-DP wrapper,
 * server optimizer outside it: the optimizer step is post-processing and costs nothing), the per-round ledger release
 * and the clients' privacy instructions, all from the run config (ALGORITHMS.md §1–§2).
 *
 * The stack is rebuilt for every aggregation from the state persisted after the previous one (server-optimizer
 * moments, the adaptive clip norm), so a restarted coordinator continues exactly where the crashed one left off. The
 * persisted document keeps the state before and after its round: if the crash came between saving the state and
 * closing the round, the round is aggregated again from the "before" state.
 */
import { createStrategy, type AggregationStrategy, type ServerOptimizerState, ServerOptimizedStrategy, withServerOptimizer } from '../aggregation/index.js';
import { RdpAccountant } from '../privacy/accountant.js';
import { sigmaForEpsilon } from '../privacy/calibrate.js';
import { DpAdaptiveClipping, DpFixedClipping } from '../privacy/central.js';
import { gaussianNoise } from '../privacy/gaussian.js';
import type { PlannedRelease } from '../privacy/ledger.js';
import type { JsonObject } from '../store/store.js';
import type { PrivacyInstructions, SampleDpParams } from '../wire/messages.js';
import { ConfigError } from './errors.js';
import type { PrivacyMode, RunConfig } from './run-config.js';

/** Privacy parameters resolved once per run (σ calibrated when the config says 'auto'). */
export interface PrivacyPlan {
  readonly mode: PrivacyMode;
  /** σ: noise std / clip norm, of the update sum (central), of each client's update (local), per step (sample). */
  readonly sigma: number;
  readonly clip: number;
  readonly epsilon: number;
  readonly delta: number;
}

/**
 * σ from the config, or calibrated so `rounds` releases fit the budget: central releases are subsampled at the
 * client rate q; local ones are not (the coordinator knows who took part, so no amplification is claimed). Sample-
 * level DP needs an explicit σ: its rate depends on each client's data size, unknown when the run is created.
 */
export function privacyPlan(config: RunConfig): PrivacyPlan | undefined {
  const p = config.privacy;
  if (!p) return undefined;
  let sigma: number;
  if (p.noiseMultiplier !== 'auto') sigma = p.noiseMultiplier;
  else if (p.mode === 'sample') {
    throw new ConfigError('privacy.noise_multiplier must be set for sample-level DP: its sampling rate depends on each client\'s data size');
  } else {
    const q = p.mode === 'central' && config.sampling.kind === 'poisson' ? config.sampling.q : 1;
    sigma = sigmaForEpsilon({ targetEpsilon: p.epsilon, delta: p.delta, q, steps: config.rounds }).sigma;
  }
  return Object.freeze({ mode: p.mode, sigma, clip: p.clip, epsilon: p.epsilon, delta: p.delta });
}

/** A client's local data size as the sample-level release sees it. */
export function sampleRate(batchSize: number, numExamples: number): number {
  return Math.min(1, batchSize / numExamples);
}

/**
 * The release one round makes, reserved in the ledger before the round opens. Sample-level: `local.steps` DP steps at
 * the largest Poisson rate among the sampled clients (the per-client worst case, since the ledger keeps one account per
 * run). A DP-SGD step and a DPZero step are the same subsampled Gaussian mechanism at (q, σ); the entry is labelled
 * 'scalar' when every sampled client runs MeZO (each step a 1-D release of the projected gradient, ALGORITHMS.md §4).
 */
export function roundRelease(config: RunConfig, plan: PrivacyPlan, sampledExamples: readonly number[], allMezo = false): PlannedRelease {
  switch (plan.mode) {
    case 'central':
      return { kind: 'aggregate', q: config.sampling.kind === 'poisson' ? config.sampling.q : 1, sigma: plan.sigma, steps: 1 };
    case 'local':
      return { kind: 'aggregate', q: 1, sigma: plan.sigma, steps: 1 };
    case 'sample': {
      const q = Math.max(...sampledExamples.map((n) => sampleRate(config.local.batchSize, n)));
      return { kind: allMezo ? 'scalar' : 'aggregate', q, sigma: plan.sigma, steps: config.local.steps };
    }
  }
}

/** What a sampled client is told to do (task.proto PrivacyInstructions). */
export function privacyInstructions(config: RunConfig, plan: PrivacyPlan | undefined, clipNorm: number, numExamples: number): PrivacyInstructions {
  const none: PrivacyInstructions = { clipNorm: 0, localNoiseMultiplier: 0, reportClipIndicator: false, sampleDp: null };
  if (!plan) return none;
  switch (plan.mode) {
    case 'central':
      return { ...none, clipNorm, reportClipIndicator: config.privacy?.adaptive === true };
    case 'local':
      return { ...none, clipNorm: plan.clip, localNoiseMultiplier: plan.sigma };
    case 'sample': {
      const sampleDp: SampleDpParams = {
        clipNorm: plan.clip,
        noiseMultiplier: plan.sigma,
        samplingRate: sampleRate(config.local.batchSize, numExamples),
        expectedBatchSize: config.local.batchSize,
      };
      return { ...none, sampleDp };
    }
  }
}

/** Where the run's ESSA state lives (forward-only.ts): blob SHA-256s (hex). */
export interface EssaRefs {
  /** safetensors of essa.ts essaStateTensors: U, P, s, searched indices, Adam moments and step. */
  readonly state: string;
  /** The basis payload clients fetch (task.proto EssaParams.basis_sha256). */
  readonly basis: string;
}

/** Strategy state carried from one aggregation to the next. */
export interface StrategyState {
  readonly optimizer?: ServerOptimizerState;
  /** The adaptive clip norm for the next round (central DP with adaptive clipping). */
  readonly clipNorm?: number;
  /** The ESSA state, once a round sampled an ESSA client. */
  readonly essa?: EssaRefs;
  /** FedKSeed's pool payload (hex SHA-256), or 'invalid' once the pool no longer reproduces the adapter. */
  readonly seedPool?: string;
}

/** What runs.putStrategyState holds: the state around the last aggregation. */
export interface StrategyDocument {
  readonly round: number;
  readonly before: StrategyState;
  readonly after: StrategyState;
}

/** The state the next aggregation starts from, given which rounds are closed. */
export function currentStrategyState(doc: JsonObject | undefined, isClosed: (round: number) => boolean): StrategyState {
  if (!doc) return {};
  const d = doc as unknown as StrategyDocument;
  return isClosed(d.round) ? d.after : d.before;
}

export function strategyDocument(round: number, before: StrategyState, after: StrategyState): JsonObject {
  return { round, before, after } as unknown as JsonObject;
}

export interface BuiltStrategy {
  readonly strategy: AggregationStrategy;
  /** The clip norm clients should use this round (central DP), else 0. */
  readonly clipNorm: number;
  /** State to persist after `strategy.aggregate` ran. */
  exportState(): StrategyState;
}

/** The strategy stack for one aggregation. `expectedClients` is the round's m (the DP denominator). */
export function buildStrategy(config: RunConfig, plan: PrivacyPlan | undefined, state: StrategyState, expectedClients: number): BuiltStrategy {
  const inner = createStrategy({
    kind: config.aggregation,
    alpha: config.lora.alpha,
    r: config.lora.r,
    // The round close enforces min_clients on the uploads; the inner strategy takes any non-empty set, because one
    // ESSA generation is a single result standing for several uploads (forward-only.ts).
    minClients: 1,
    // Under DP no client's weight may depend on its data.
    weighting: plan ? 'equal' : 'examples',
  });
  let dp: AggregationStrategy = inner;
  let clipState: () => number | undefined = () => undefined;
  let clipNorm = 0;
  if (plan?.mode === 'central') {
    const q = config.sampling.kind === 'poisson' ? config.sampling.q : 1;
    // The ledger is the account that counts; the wrapper's own accountant is required by its interface only.
    const deps = { accountant: new RdpAccountant(), noise: gaussianNoise };
    if (config.privacy?.adaptive) {
      const adaptive = new DpAdaptiveClipping(
        inner,
        { noiseMultiplier: plan.sigma, initialClipNorm: state.clipNorm ?? plan.clip, samplingRate: q, expectedClients, minResults: config.minClients },
        deps,
      );
      clipNorm = adaptive.clipNorm;
      clipState = () => adaptive.clipNorm;
      dp = adaptive;
    } else {
      dp = new DpFixedClipping(inner, { noiseMultiplier: plan.sigma, clipNorm: plan.clip, samplingRate: q, minResults: config.minClients }, deps);
      clipNorm = plan.clip;
    }
  }
  const opt = config.serverOptimizer;
  const plain = opt.kind === 'fedavg' && opt.lr === 1; // x + 1·Δ is the inner average itself
  const strategy = plain ? dp : withServerOptimizer(dp, { kind: opt.kind, lr: opt.lr });
  if (strategy instanceof ServerOptimizedStrategy && state.optimizer) strategy.optimizer.load(state.optimizer);
  return {
    strategy,
    clipNorm,
    exportState(): StrategyState {
      const clip = clipState();
      return {
        ...(strategy instanceof ServerOptimizedStrategy ? { optimizer: strategy.optimizer.toJSON() } : {}),
        ...(clip === undefined ? {} : { clipNorm: clip }),
      };
    },
  };
}
