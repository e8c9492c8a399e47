/**
 * Server-side optimizers on the aggregated pseudo-gradient (Reddi et al., "Adaptive Federated Optimization",
 * ICLR 2021, Algorithm 2). Each round the inner strategy proposes a global adapter; Δ_t = proposed − x_t is treated
 * as a pseudo-gradient and the server steps:
 *
 *   FedAvg:  x_{t+1} = x_t + η Δ_t                                  (η = 1 is plain averaging)
 *   FedAdam: m_t = β1 m_{t−1} + (1−β1) Δ_t,  v_t = β2 v_{t−1} + (1−β2) Δ_t²
 *   FedYogi: m_t as above,                    v_t = v_{t−1} − (1−β2) Δ_t² sign(v_{t−1} − Δ_t²)
 *            x_{t+1} = x_t + η m_t / (√v_t + τ)                      (element-wise; no bias correction, as in the paper)
 *
 * Initialisation m_{−1} = 0, v_{−1} = τ² (the paper requires v_{−1} ≥ τ²). Defaults β1 = 0.9, β2 = 0.99, τ = 1e-3,
 * η = 1e-2 for the adaptive ones (the paper's §5 settings and the centre of its η grid).
 *
 * Design: a wrapper strategy (`withServerOptimizer`) around any inner strategy, like Flower's DP wrappers, so the
 * averaging math stays in the inner strategy. Wrap OUTSIDE a DP wrapper: the step is post-processing of the noised
 * aggregate and costs no privacy. The state (m, v per tensor and the step count) lives in the ServerOptimizer
 * instance; toJSON/load let the coordinator persist it. A tensor gets state the first time it moves, so the frozen
 * lora_A of `ffa` costs nothing. Not for `exact`: it re-factors A and B every round (the SVD basis may rotate or flip
 * sign), so moments accumulated on the factors are meaningless; index.ts rejects that combination.
 */
import { distance, globalNorm, hostTensor, sameLayout, type HostTensor, type TensorMap } from '../tensors/host.js';
import { weightedSum } from './aggregate.js';
import { OptimizerStateError, StrategyConfigError } from './errors.js';
import type { AggregateOutcome, AggregationStrategy, ClientFailure, ClientInstructions, ClientUpdate, RoundContext } from './strategy.js';

export type ServerOptimizerKind = 'fedavg' | 'fedadam' | 'fedyogi';
export const SERVER_OPTIMIZER_KINDS: readonly ServerOptimizerKind[] = Object.freeze(['fedavg', 'fedadam', 'fedyogi']);

export interface ServerOptimizerConfig {
  readonly kind: ServerOptimizerKind;
  /** Server learning rate η. Default 1 for fedavg (plain averaging), 1e-2 for fedadam and fedyogi. */
  readonly lr: number;
  /** First-moment decay β1. Default 0.9. Unused by fedavg. */
  readonly beta1: number;
  /** Second-moment decay β2. Default 0.99. Unused by fedavg. */
  readonly beta2: number;
  /** Adaptivity τ: floor of the denominator, and v_{−1} = τ². Default 1e-3. Unused by fedavg. */
  readonly tau: number;
}

export type ServerOptimizerOptions = Pick<ServerOptimizerConfig, 'kind'> & Partial<Omit<ServerOptimizerConfig, 'kind'>>;

export function resolveServerOptimizerConfig(options: ServerOptimizerOptions): ServerOptimizerConfig {
  const { kind } = options;
  if (!SERVER_OPTIMIZER_KINDS.includes(kind)) {
    throw new StrategyConfigError(`unknown server optimizer ${String(kind)}; expected one of ${SERVER_OPTIMIZER_KINDS.join(', ')}`);
  }
  const config = {
    kind,
    lr: options.lr ?? (kind === 'fedavg' ? 1 : 1e-2),
    beta1: options.beta1 ?? 0.9,
    beta2: options.beta2 ?? 0.99,
    tau: options.tau ?? 1e-3,
  };
  if (!(config.lr > 0) || !Number.isFinite(config.lr)) throw new StrategyConfigError(`server lr must be a finite number > 0, got ${config.lr}`);
  for (const key of ['beta1', 'beta2'] as const) {
    if (!(config[key] >= 0 && config[key] < 1)) throw new StrategyConfigError(`${key} must lie in [0, 1), got ${config[key]}`);
  }
  if (!(config.tau > 0) || !Number.isFinite(config.tau)) throw new StrategyConfigError(`tau must be a finite number > 0, got ${config.tau}`);
  return Object.freeze(config);
}

/** Serialised optimizer state: moments as base64 of little-endian float32 (exact round trip). */
export interface ServerOptimizerState {
  readonly format: 'lethe.server-optimizer';
  readonly version: 1;
  readonly config: ServerOptimizerConfig;
  readonly steps: number;
  readonly tensors: readonly { readonly name: string; readonly shape: readonly number[]; readonly m: string; readonly v: string }[];
}

interface Moments {
  readonly shape: readonly number[];
  readonly m: Float32Array;
  readonly v: Float32Array;
}

export class ServerOptimizer {
  readonly config: ServerOptimizerConfig;
  private steps = 0;
  private readonly moments = new Map<string, Moments>();

  constructor(options: ServerOptimizerOptions) {
    this.config = resolveServerOptimizerConfig(options);
  }

  /** Server steps taken so far. */
  get stepCount(): number {
    return this.steps;
  }

  /**
   * x_{t+1} from x_t = `global` and Δ_t = `pseudoGradient` (tensors absent from it are copied unchanged). With `into`
   * (the same names and shapes as `global`), x_{t+1} is written over its tensors instead of into fresh memory; each may
   * be the Δ_t it is computed from, since every element is read before it is overwritten.
   */
  step(global: TensorMap, pseudoGradient: TensorMap, into?: TensorMap): Map<string, HostTensor> {
    this.steps++;
    const { kind, lr } = this.config;
    const out = new Map<string, HostTensor>();
    for (const [name, x] of global) {
      const target = into === undefined ? new Float32Array(x.data.length) : into.get(name)?.data;
      if (target?.length !== x.data.length) throw new RangeError(`the step's destination has no tensor ${name} of ${x.data.length} values`);
      out.set(name, hostTensor(x.shape, target));
      const delta = pseudoGradient.get(name);
      if (kind === 'fedavg') {
        if (delta === undefined) target.set(x.data);
        else weightedSum([x.data, delta.data], [1, lr], target);
        continue;
      }
      const state = this.moments.get(name) ?? (delta && delta.data.some((d) => d !== 0) ? this.initMoments(name, x) : undefined);
      if (delta === undefined || state === undefined) {
        target.set(x.data);
        continue;
      }
      if (state.m.length !== x.data.length) {
        throw new OptimizerStateError(`optimizer state for ${name} has ${state.m.length} values, the tensor ${x.data.length}`, 'bad_state');
      }
      this.adaptiveStep(x.data, delta.data, state, target);
    }
    return out;
  }

  toJSON(): ServerOptimizerState {
    const encode = (a: Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
    return {
      format: 'lethe.server-optimizer',
      version: 1,
      config: this.config,
      steps: this.steps,
      tensors: [...this.moments].map(([name, s]) => ({ name, shape: [...s.shape], m: encode(s.m), v: encode(s.v) })),
    };
  }

  /**
   * Replaces this optimizer's state with a saved one (e.g. JSON.parse of toJSON()). Refuses another optimizer kind's
   * state ('wrong_optimizer') and malformed state ('bad_state'); the hyperparameters stay this instance's, so a
   * resumed run may change η.
   */
  load(saved: unknown): void {
    const s = saved as Partial<ServerOptimizerState> | null;
    if (s === null || typeof s !== 'object' || s.format !== 'lethe.server-optimizer' || s.version !== 1) {
      throw new OptimizerStateError('not a version-1 lethe.server-optimizer state', 'bad_state');
    }
    if (s.config?.kind !== this.config.kind) {
      throw new OptimizerStateError(
        `state belongs to server optimizer ${String(s.config?.kind)}, this one is ${this.config.kind}; ` +
          `start from fresh state or configure the same optimizer`,
        'wrong_optimizer',
      );
    }
    if (!Number.isInteger(s.steps) || s.steps! < 0 || !Array.isArray(s.tensors)) {
      throw new OptimizerStateError('optimizer state needs an integer step count ≥ 0 and a tensor list', 'bad_state');
    }
    const moments = new Map<string, Moments>();
    for (const t of s.tensors as unknown[]) {
      const entry = parseMoments(t);
      if (entry === undefined) {
        throw new OptimizerStateError('an optimizer state entry is malformed (needs name, shape, and m, v of the shape\'s size)', 'bad_state');
      }
      moments.set(entry.name, entry.moments);
    }
    this.moments.clear();
    for (const [name, mo] of moments) this.moments.set(name, mo);
    this.steps = s.steps!;
  }

  private initMoments(name: string, x: HostTensor): Moments {
    const { tau } = this.config;
    const state = { shape: [...x.shape], m: new Float32Array(x.data.length), v: new Float32Array(x.data.length).fill(tau * tau) };
    this.moments.set(name, state);
    return state;
  }

  /** Writes x + η·m̂/(√v + τ) into `out` (which may be `delta`: element i is read before it is written). */
  private adaptiveStep(x: Float32Array, delta: Float32Array, { m, v }: Moments, out: Float32Array): void {
    const { kind, lr, beta1, beta2, tau } = this.config;
    for (let i = 0; i < x.length; i++) {
      const d = delta[i]!;
      const d2 = d * d;
      m[i] = beta1 * m[i]! + (1 - beta1) * d;
      v[i] = kind === 'fedadam' ? beta2 * v[i]! + (1 - beta2) * d2 : v[i]! - (1 - beta2) * d2 * Math.sign(v[i]! - d2);
      out[i] = x[i]! + (lr * m[i]!) / (Math.sqrt(v[i]!) + tau);
    }
  }
}

function parseMoments(entry: unknown): { name: string; moments: Moments } | undefined {
  const t = entry as { name?: unknown; shape?: unknown; m?: unknown; v?: unknown } | null;
  if (t === null || typeof t !== 'object' || typeof t.name !== 'string' || !Array.isArray(t.shape)) return undefined;
  const shape = t.shape as unknown[];
  if (!shape.every((d): d is number => Number.isInteger(d) && (d as number) >= 0)) return undefined;
  const n = shape.reduce((a, b) => a * b, 1);
  const m = decode(t.m);
  const v = decode(t.v);
  if (m === undefined || v === undefined || m.length !== n || v.length !== n) return undefined;
  return { name: t.name, moments: { shape, m, v } };
}

function decode(b64: unknown): Float32Array | undefined {
  if (typeof b64 !== 'string') return undefined;
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.byteLength % 4 !== 0) return undefined;
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** An inner strategy whose proposed global adapter is turned into a server-optimizer step. */
export class ServerOptimizedStrategy implements AggregationStrategy {
  readonly name: string;

  constructor(
    readonly inner: AggregationStrategy,
    readonly optimizer: ServerOptimizer,
  ) {
    this.name = `${inner.name}+${optimizer.config.kind}`;
  }

  configureRound(round: number): ClientInstructions {
    return this.inner.configureRound(round);
  }

  aggregate(ctx: RoundContext, results: readonly ClientUpdate[], failures: readonly ClientFailure[]): AggregateOutcome | undefined {
    const proposed = this.inner.aggregate(ctx, results, failures);
    if (proposed === undefined) return undefined;
    if (!sameLayout(proposed.global, ctx.global)) throw new RangeError(`inner strategy ${this.inner.name} returned an adapter of another layout`);
    // The proposal is this strategy's to overwrite (AggregateOutcome.global): it becomes Δ_t and then the step, in
    // place, so the new adapter stays in the memory the round context allocated.
    const pseudoGradient = proposed.global;
    for (const [name, t] of pseudoGradient) weightedSum([t.data, ctx.global.get(name)!.data], [1, -1], t.data);
    const pseudoGradientNorm = globalNorm(pseudoGradient);
    const global = this.optimizer.step(ctx.global, pseudoGradient, pseudoGradient);
    return {
      global,
      metrics: { ...proposed.metrics, pseudo_gradient_norm: pseudoGradientNorm, server_step_norm: distance(global, ctx.global) },
    };
  }
}

export function withServerOptimizer(inner: AggregationStrategy, optimizer: ServerOptimizer | ServerOptimizerOptions): ServerOptimizedStrategy {
  return new ServerOptimizedStrategy(inner, optimizer instanceof ServerOptimizer ? optimizer : new ServerOptimizer(optimizer));
}
