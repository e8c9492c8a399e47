/**
 * Optimizers over named tf.Variables: AdamW (the default) and plain SGD (DP-SGD's original optimizer, Abadi et al.
 * 2016; its update is the gradient itself, which makes clipping bounds directly observable).
 *
 * AdamW: Loshchilov & Hutter 2019, Adam with decoupled weight decay.
 *
 * Why not tf.train.adam: it has no decoupled weight decay and names its moment variables after the parameters,
 * which collide across models (tfjs variable names are global). Here the moments are unnamed variables owned by
 * the optimizer, and `dispose()` frees them. The step is the PyTorch AdamW update:
 *   p ← p − lr·wd·p;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
 *   p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + eps)
 */
import * as tf from '@tensorflow/tfjs';
import { TrainError } from './errors.js';

export interface AdamWConfig {
  readonly beta1: number; // first-moment decay
  readonly beta2: number; // second-moment decay
  readonly eps: number; // added to √v̂; 1e-8 as in PyTorch
  readonly weightDecay: number; // decoupled decay coefficient; 0 = plain Adam
  /** Which parameters decay (nanoGPT decays only ≥2-D weights, not biases or LayerNorm gains). */
  readonly decays: (name: string, shape: readonly number[]) => boolean;
}

export const DEFAULT_ADAMW: AdamWConfig = Object.freeze({
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  decays: (_name: string, shape: readonly number[]) => shape.length >= 2,
});

interface Slot {
  readonly param: tf.Variable;
  readonly m: tf.Variable;
  readonly v: tf.Variable;
  readonly decays: boolean;
}

/** Updates the variables it was built over from gradients keyed by the same names. */
export interface Optimizer {
  /** One update with gradients for (a subset of) the parameters, by name. The caller keeps ownership of `grads`. */
  step(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void;
  /** Frees optimizer state (not the parameters, which the caller owns). Idempotent. */
  dispose(): void;
}

export const OPTIMIZERS = ['adamw', 'sgd'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

/** The optimizer called `name` over `params`; weight decay is decoupled (p ← p − lr·wd·p) in both. */
export function makeOptimizer(name: OptimizerName, params: ReadonlyMap<string, tf.Variable>, weightDecay: number): Optimizer {
  return name === 'sgd' ? new Sgd(params, weightDecay) : new AdamW(params, { ...DEFAULT_ADAMW, weightDecay });
}

export class AdamW implements Optimizer {
  private readonly slots = new Map<string, Slot>();
  private t = 0;
  private disposed = false;

  constructor(
    params: ReadonlyMap<string, tf.Variable>,
    private readonly config: AdamWConfig = DEFAULT_ADAMW,
  ) {
    // tf.variable keeps its initial tensor alive: create the zeros inside tidy so only the variables survive.
    for (const [name, param] of params) {
      const [m, v] = tf.tidy(() => [tf.variable(tf.zerosLike(param), false), tf.variable(tf.zerosLike(param), false)]);
      this.slots.set(name, {
        param,
        m: m!,
        v: v!,
        decays: config.weightDecay > 0 && config.decays(name, param.shape),
      });
    }
  }

  /** Steps taken so far. */
  get iterations(): number {
    return this.t;
  }

  step(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    if (this.disposed) throw new TrainError('AdamW used after dispose()', 'bad_option');
    const { beta1, beta2, eps, weightDecay } = this.config;
    this.t += 1;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    tf.tidy(() => {
      for (const [name, g] of grads) {
        const s = this.slots.get(name);
        if (!s) throw new TrainError(`gradient for "${name}", which this optimizer does not own`, 'bad_option');
        const m = s.m.mul(beta1).add(g.mul(1 - beta1));
        const v = s.v.mul(beta2).add(g.square().mul(1 - beta2));
        s.m.assign(m);
        s.v.assign(v);
        const base = s.decays ? s.param.mul(1 - lr * weightDecay) : s.param;
        const update = m.div(c1).div(v.div(c2).sqrt().add(eps)).mul(lr);
        s.param.assign(base.sub(update));
      }
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
  }
}

/** p ← p·(1 − lr·wd) − lr·g: stateless, so dispose() has nothing to free. */
export class Sgd implements Optimizer {
  constructor(
    private readonly params: ReadonlyMap<string, tf.Variable>,
    private readonly weightDecay = 0,
  ) {}

  step(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    tf.tidy(() => {
      for (const [name, g] of grads) {
        const p = this.params.get(name);
        if (!p) throw new TrainError(`gradient for "${name}", which this optimizer does not own`, 'bad_option');
        const base = this.weightDecay > 0 && p.shape.length >= 2 ? p.mul(1 - lr * this.weightDecay) : p;
        p.assign(base.sub(g.mul(lr)));
      }
    });
  }

  dispose(): void {}
}

/**
 * Scales gradients so their joint L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_). Returns new
 * tensors (the caller disposes them) and the norm before clipping.
 */
export function clipByGlobalNorm(
  grads: ReadonlyMap<string, tf.Tensor>,
  maxNorm: number,
): { grads: Map<string, tf.Tensor>; norm: number } {
  const norm = Math.sqrt(
    tf.tidy(() => tf.addN([...grads.values()].map((g) => g.square().sum())).dataSync()[0]!),
  );
  const scale = norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, tf.mul(g, scale));
  return { grads: out, norm };
}
