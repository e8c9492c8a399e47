/**
 * Central, user-level DP (DP-FedAvg, McMahan et al. 2018) as wrappers around ANY inner AggregationStrategy, after
 * Flower's `dp_fixed_clipping.py` / `dp_adaptive_clipping.py` (server-side clipping).
 *
 * Per round, with m = ctx.expectedClients (q × population under Poisson sampling) and n clients that replied:
 *   1. each delta u_k (all travelling tensors flattened together) is checked and clipped: u_k ← u_k·min(1, C/‖u_k‖);
 *   2. the inner strategy aggregates the clipped deltas with EQUAL weights (numExamples = 1), so its step is
 *      mean_k u_k = Σ u_k / n;
 *   3. that step is rescaled to the fixed denominator, Σ u_k / m (dividing by n, which depends on who replied,
 *      would leak), and N(0, σ²C²)/m is added to every travelling coordinate: ū = (Σ u_k + N(0, σ²C² I)) / m.
 * Tensors that did not travel are copied from ctx.global, and the inner strategy's metrics are dropped: both could
 * depend on client data without noise.
 *
 * The inner strategy must be mean-linear in the deltas (new global = global + mean of deltas: FedAvg, FFA-LoRA); a
 * nonlinear inner (the `exact` SVD re-factorisation) would not make this the Gaussian mechanism the accountant assumes.
 *
 * Accounting is fail-closed: EVERY call to aggregate steps the accountant, even a round that is then dropped (too
 * few results) or that the inner strategy declines, because whether a round is dropped depends on who replied.
 * The coordinator should reserve the same release in the PrivacyLedger (see `release`) before calling aggregate.
 */
import type {
  AggregateOutcome,
  AggregationStrategy,
  ClientFailure,
  ClientInstructions,
  ClientUpdate,
  RoundContext,
} from '../aggregation/strategy.js';
import { type HostTensor, type TensorMap, nonFiniteTensors } from '../tensors/host.js';
import type { RdpAccountant } from './accountant.js';
import { checkClipNorm, clipTensors } from './clip.js';
import { InvalidPrivacyParameterError, InvalidUpdateError } from './errors.js';
import type { NoiseSource } from './gaussian.js';
import type { PlannedRelease } from './ledger.js';

/**
 * ClientUpdate.metrics key with which a client reports b_k = 1 if its update's norm was ≤ the round's clip norm
 * (unclipped), 0 if it had to clip (Andrew et al. 2021). Needed when clients clip before sending, since a clipped
 * update then looks unclipped to the coordinator; without it the coordinator uses the norm it observes.
 */
export const CLIP_INDICATOR_METRIC = 'clip_unclipped';

/** ClientInstructions key carrying the round's clip norm to the clients. */
export const CLIP_NORM_INSTRUCTION = 'clip_norm';

/** What every DP wrapper needs besides its parameters. */
export interface DpDependencies {
  /** Stepped once per aggregate call with (samplingRate, effective noise multiplier). */
  readonly accountant: RdpAccountant;
  /** Gaussian source; production passes gaussianNoise (node:crypto). */
  readonly noise: NoiseSource;
}

export interface DpFixedClippingConfig {
  /** z: the noise on the sum has std z·C per coordinate. > 0. */
  readonly noiseMultiplier: number;
  /** C: the L2 bound on each client's delta. > 0. */
  readonly clipNorm: number;
  /** q: the Poisson client sampling rate the coordinator uses; the accountant's q. In (0, 1]. */
  readonly samplingRate: number;
  /** Rounds with fewer valid results are dropped (still counted); default 1. */
  readonly minResults?: number;
}

/** Fixed clip norm C, noise N(0, z²C²) on the sum (McMahan et al. 2018, Alg. 1 with the fixed-denominator estimator). */
export class DpFixedClipping implements AggregationStrategy {
  readonly name: string;
  private readonly config: Required<DpFixedClippingConfig>;

  constructor(
    private readonly inner: AggregationStrategy,
    config: DpFixedClippingConfig,
    private readonly deps: DpDependencies,
  ) {
    checkPositive('noiseMultiplier', config.noiseMultiplier);
    checkClipNorm(config.clipNorm);
    checkSamplingRate(config.samplingRate);
    this.config = Object.freeze({ ...config, minResults: checkMinResults(config.minResults ?? 1) });
    this.name = `dp-fixed-clipping(${inner.name})`;
  }

  /** The release every aggregate call makes: reserve it in the ledger before calling aggregate. */
  get release(): PlannedRelease {
    return { kind: 'aggregate', q: this.config.samplingRate, sigma: this.config.noiseMultiplier, steps: 1 };
  }

  configureRound(round: number): ClientInstructions {
    return { ...this.inner.configureRound(round), [CLIP_NORM_INSTRUCTION]: this.config.clipNorm };
  }

  aggregate(ctx: RoundContext, results: readonly ClientUpdate[], failures: readonly ClientFailure[]): AggregateOutcome | undefined {
    const { clipNorm, noiseMultiplier, samplingRate, minResults } = this.config;
    const m = checkExpectedClients(ctx.expectedClients);
    this.deps.accountant.step(samplingRate, noiseMultiplier);
    const round = clipRound(ctx, results, failures, clipNorm);
    if (round.updates.length < minResults) return undefined;
    const outcome = noisyInnerAggregate(this.inner, ctx, round, noiseMultiplier * clipNorm, this.deps.noise);
    if (!outcome) return undefined;
    return {
      global: outcome,
      metrics: { dp_clip_norm: clipNorm, dp_noise_multiplier: noiseMultiplier, dp_noise_std: (noiseMultiplier * clipNorm) / m },
    };
  }
}

export interface DpAdaptiveClippingConfig {
  /** z: the total noise multiplier the accountant sees (updates and clip count together). > 0. */
  readonly noiseMultiplier: number;
  /** C₀: the clip norm of the first round. > 0. */
  readonly initialClipNorm: number;
  /** q: the Poisson client sampling rate; the accountant's q. In (0, 1]. */
  readonly samplingRate: number;
  /** m: expected clients per round (q × population), for the default σ_b. > 0. */
  readonly expectedClients: number;
  /** γ: the norm quantile C tracks; default 0.5 (the median update norm). */
  readonly targetQuantile?: number;
  /** η: geometric step of the clip norm update; default 0.2. */
  readonly clipLearningRate?: number;
  /** σ_b: std of the noise on the clip count; default m/20. Must exceed z/2. */
  readonly clipCountStddev?: number;
  /** Rounds with fewer valid results are dropped (still counted); default 1. */
  readonly minResults?: number;
}

/**
 * Adaptive clipping (Andrew et al. 2021, "Differentially Private Learning with Adaptive Clipping", Alg. 1): C tracks
 * the γ-quantile of update norms. Each round releases b̃ = ½ + (Σ_k (b_k − ½) + N(0, σ_b²))/m, b_k = 1 if ‖u_k‖ ≤ C,
 * then C ← C·exp(−η(b̃ − γ)). Centring b_k at ½ halves its sensitivity to ½ (the paper's §3), which is what makes the
 * two releases together one Gaussian mechanism with multiplier z when the update noise uses
 * z_Δ = (z⁻² − (2σ_b)⁻²)^(−½): the accountant is stepped once per round with (q, z).
 */
export class DpAdaptiveClipping implements AggregationStrategy {
  readonly name: string;
  /** z_Δ: the multiplier of the noise on the update sum. */
  readonly updateNoiseMultiplier: number;
  private readonly config: Required<DpAdaptiveClippingConfig>;
  private clip: number;

  constructor(
    private readonly inner: AggregationStrategy,
    config: DpAdaptiveClippingConfig,
    private readonly deps: DpDependencies,
  ) {
    checkPositive('noiseMultiplier', config.noiseMultiplier);
    checkClipNorm(config.initialClipNorm);
    checkSamplingRate(config.samplingRate);
    checkPositive('expectedClients', config.expectedClients);
    const full = {
      ...config,
      targetQuantile: config.targetQuantile ?? 0.5,
      clipLearningRate: config.clipLearningRate ?? 0.2,
      clipCountStddev: config.clipCountStddev ?? config.expectedClients / 20,
      minResults: checkMinResults(config.minResults ?? 1),
    };
    if (!(full.targetQuantile > 0 && full.targetQuantile < 1)) {
      throw new InvalidPrivacyParameterError(`targetQuantile γ must be in (0, 1), got ${full.targetQuantile}`);
    }
    checkPositive('clipLearningRate', full.clipLearningRate);
    checkPositive('clipCountStddev', full.clipCountStddev);
    const z = full.noiseMultiplier;
    const sb = full.clipCountStddev;
    if (!(2 * sb > z)) {
      throw new InvalidPrivacyParameterError(
        `clip count noise σ_b=${sb} is too small for noise multiplier z=${z}: z_Δ = (z⁻² − (2σ_b)⁻²)^(−½) needs σ_b > z/2; ` +
          `raise clipCountStddev (default m/20, so expect more than ${Math.ceil(10 * z)} clients per round) or lower z`,
      );
    }
    this.config = Object.freeze(full);
    this.updateNoiseMultiplier = (z ** -2 - (2 * sb) ** -2) ** -0.5;
    this.clip = full.initialClipNorm;
    this.name = `dp-adaptive-clipping(${inner.name})`;
  }

  /** The clip norm the next round uses. */
  get clipNorm(): number {
    return this.clip;
  }

  /** The release every aggregate call makes (updates and clip count jointly): reserve it before aggregate. */
  get release(): PlannedRelease {
    return { kind: 'aggregate', q: this.config.samplingRate, sigma: this.config.noiseMultiplier, steps: 1 };
  }

  configureRound(round: number): ClientInstructions {
    return { ...this.inner.configureRound(round), [CLIP_NORM_INSTRUCTION]: this.clip };
  }

  aggregate(ctx: RoundContext, results: readonly ClientUpdate[], failures: readonly ClientFailure[]): AggregateOutcome | undefined {
    const { noiseMultiplier, samplingRate, minResults, clipCountStddev, clipLearningRate, targetQuantile } = this.config;
    const m = checkExpectedClients(ctx.expectedClients);
    const clipNorm = this.clip;
    this.deps.accountant.step(samplingRate, noiseMultiplier);
    const round = clipRound(ctx, results, failures, clipNorm);
    const centredCount = round.unclipped.reduce((s, b) => s + (b - 0.5), 0);
    const unclippedFraction = 0.5 + (centredCount + this.deps.noise(1, clipCountStddev)[0]!) / m;
    if (round.updates.length < minResults) return undefined;
    const noiseStd = this.updateNoiseMultiplier * clipNorm;
    const outcome = noisyInnerAggregate(this.inner, ctx, round, noiseStd, this.deps.noise);
    if (!outcome) return undefined;
    this.clip = clipNorm * Math.exp(-clipLearningRate * (unclippedFraction - targetQuantile));
    return {
      global: outcome,
      metrics: {
        dp_clip_norm: clipNorm,
        dp_next_clip_norm: this.clip,
        dp_unclipped_fraction: unclippedFraction,
        dp_noise_multiplier: this.updateNoiseMultiplier,
        dp_noise_std: noiseStd / m,
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------

interface ClippedRound {
  /** The valid results, clipped, with numExamples = 1 (equal weights). */
  readonly updates: ClientUpdate[];
  /** b_k per valid result: 1 if unclipped. */
  readonly unclipped: number[];
  /** The input failures plus the results rejected as invalid. */
  readonly failures: ClientFailure[];
  /** Names and shapes of the travelling tensors (from the first valid result); undefined when none was valid. */
  readonly layout: TensorMap | undefined;
}

/** Checks each result against ctx.global and the first valid result's layout, and clips the valid ones to C. */
function clipRound(
  ctx: RoundContext,
  results: readonly ClientUpdate[],
  failures: readonly ClientFailure[],
  clipNorm: number,
): ClippedRound {
  const updates: ClientUpdate[] = [];
  const unclipped: number[] = [];
  const rejected: ClientFailure[] = [...failures];
  let layout: TensorMap | undefined;
  for (const r of results) {
    try {
      checkDelta(ctx.global, layout, r);
      const reported = indicator(r);
      const { tensors, clipped } = clipTensors(r.delta, clipNorm);
      layout ??= tensors;
      updates.push({ ...r, numExamples: 1, delta: tensors });
      unclipped.push(reported ?? (clipped ? 0 : 1));
    } catch (err) {
      if (!(err instanceof InvalidUpdateError)) throw err;
      rejected.push({ clientId: r.clientId, reason: err.message });
    }
  }
  return { updates, unclipped, failures: rejected, layout };
}

function checkDelta(global: TensorMap, layout: TensorMap | undefined, r: ClientUpdate): void {
  if (r.delta.size === 0) throw new InvalidUpdateError(`client ${r.clientId} sent an empty update`);
  for (const [name, t] of r.delta) {
    const g = global.get(name);
    if (!g || !sameShape(g.shape, t.shape) || t.data.length !== g.data.length) {
      throw new InvalidUpdateError(`client ${r.clientId} sent tensor "${name}" [${t.shape.join(', ')}], which the global adapter does not have`);
    }
    if (layout && !layout.has(name)) throw new InvalidUpdateError(`client ${r.clientId} sent tensor "${name}", which this round does not train`);
  }
  if (layout && layout.size !== r.delta.size) {
    throw new InvalidUpdateError(`client ${r.clientId} sent ${r.delta.size} tensors; this round trains ${layout.size}`);
  }
  const bad = nonFiniteTensors(r.delta);
  if (bad.length > 0) throw new InvalidUpdateError(`client ${r.clientId} sent non-finite values in ${bad.join(', ')}`);
}

/** The client's reported b_k, validated; undefined when it reported none. */
function indicator(r: ClientUpdate): number | undefined {
  const b = r.metrics[CLIP_INDICATOR_METRIC];
  if (b === undefined) return undefined;
  if (b !== 0 && b !== 1) throw new InvalidUpdateError(`client ${r.clientId} reported ${CLIP_INDICATOR_METRIC}=${b}; it must be 0 or 1`);
  return b;
}

/**
 * Runs the inner strategy on the clipped updates and turns its step (mean over n) into (Σ u_k + N(0, std²))/m for
 * the travelling tensors; everything else is ctx.global. Noise is drawn before the inner strategy runs. The result
 * is written over the inner strategy's own tensors (AggregateOutcome.global is the caller's), so it stays in the
 * memory the round context allocated.
 */
function noisyInnerAggregate(
  inner: AggregationStrategy,
  ctx: RoundContext,
  round: ClippedRound,
  noiseStd: number,
  noise: NoiseSource,
): Map<string, HostTensor> | undefined {
  const layout = round.layout!;
  const noiseByName = new Map<string, Float64Array>();
  for (const [name, t] of layout) noiseByName.set(name, noise(t.data.length, noiseStd));
  const outcome = inner.aggregate(ctx, round.updates, round.failures);
  if (!outcome) return undefined;
  const n = round.updates.length;
  const m = ctx.expectedClients;
  const out = new Map<string, HostTensor>();
  for (const [name, g] of ctx.global) {
    const stepped = outcome.global.get(name);
    if (!stepped || !sameShape(stepped.shape, g.shape) || stepped.data.length !== g.data.length) {
      throw new InvalidUpdateError(`inner strategy ${inner.name} returned no tensor "${name}" of shape [${g.shape.join(', ')}]`);
    }
    const data = stepped.data;
    const z = noiseByName.get(name);
    if (!z) data.set(g.data);
    // Element i of the step is read before it is overwritten.
    else for (let i = 0; i < data.length; i++) data[i] = g.data[i]! + ((data[i]! - g.data[i]!) * n + z[i]!) / m;
    out.set(name, { shape: [...g.shape], data });
  }
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkPositive(name: string, x: number): void {
  if (!(x > 0) || x === Infinity) throw new InvalidPrivacyParameterError(`${name} must be finite and > 0, got ${x}`);
}

function checkSamplingRate(q: number): void {
  if (!(q > 0 && q <= 1)) throw new InvalidPrivacyParameterError(`samplingRate q must be in (0, 1], got ${q}`);
}

function checkMinResults(k: number): number {
  if (!Number.isInteger(k) || k < 1) throw new InvalidPrivacyParameterError(`minResults must be an integer ≥ 1, got ${k}`);
  return k;
}

function checkExpectedClients(m: number): number {
  if (!(m > 0) || m === Infinity) {
    throw new InvalidPrivacyParameterError(`ctx.expectedClients must be finite and > 0 under DP (it is the denominator), got ${m}`);
  }
  return m;
}
