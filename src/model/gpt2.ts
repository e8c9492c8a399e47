/**
 * GPT-2 in TensorFlow.js, read top to bottom: small parts, then the config, then the model.
 *
 * Exactly the architecture of Radford et al. 2019 as implemented by HF transformers' modeling_gpt2.py and
 * karpathy/nanoGPT's model.py: token + learned position embeddings, pre-LayerNorm blocks, causal multi-head attention
 * with a fused qkv projection (c_attn) and an output projection (c_proj), a GELU (tanh form, "gelu_new") MLP
 * (c_fc, c_proj), a final LayerNorm (ln_f) and an LM head tied to the token embedding. No dropout (Lethe never trains
 * with it; MeZO needs a deterministic loss).
 *
 * Weights use HF names without the "transformer." prefix; projections are HF Conv1D, weight [d_in, d_out]: y = x W + b.
 * Activations are kept 2-D, [N = B·T, C], except inside attention, so every projection is one plain matMul.
 * All forward functions are pure functions of their inputs; call them inside tf.tidy.
 */
import * as tf from '@tensorflow/tfjs';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { sizeOf } from '../tensors/host.js';
import { AdapterError, ModelConfigError, ModelDisposedError, ModelInputError, WeightsError } from './errors.js';
import type { LoraParams, LoraTarget } from './lora.js';
import { HEAD_NAME, loraScale } from './lora.js';
import { causalAttention, frozenMatMul, gelu, layerNorm, loraBranch, matMul, selectRows } from './ops.js';
import { seededNormal } from './random.js';

/** One adapter or several (O3: a utility adapter plus gated unlearning adapters), summed. */
export type LoraInput = LoraParams | readonly LoraParams[];

/** How the parts reach the model's weights: by HF name, and x·W under the model's gradient policy. */
interface Weights {
  get(name: string): tf.Tensor;
  times(x: tf.Tensor2D, name: string): tf.Tensor2D; // x [N, dIn] · W[name] [dIn, dOut]
}

/** Per-forward context that every layer needs: the batch geometry and the adapters to add. */
interface Ctx {
  readonly batch: number; // B
  readonly time: number; // T
  readonly adapters: readonly LoraParams[];
  readonly rowGates: readonly (tf.Tensor | undefined)[]; // per adapter: gate expanded to [N, 1], or none
}

// ---------------------------------------------------------------------------------------------------------------
// small parts

/** HF Conv1D, y = x W + b with W [dIn, dOut], plus each adapter's (alpha/r)·x Aᵀ Bᵀ when it targets this projection. */
class Conv1D {
  private readonly prefix: string; // h.{layer}.{module}
  private readonly shape: readonly number[]; // of W: [dIn, dOut]
  private readonly b: tf.Tensor1D; // [dOut]
  constructor(
    private readonly weights: Weights,
    private readonly layer: number,
    private readonly module: LoraTarget,
  ) {
    this.prefix = `h.${layer}.${module}`;
    this.shape = weights.get(`${this.prefix}.weight`).shape;
    this.b = weights.get(`${this.prefix}.bias`) as tf.Tensor1D;
  }

  apply(x: tf.Tensor2D, ctx: Ctx): tf.Tensor2D {
    let y = tf.add(this.weights.times(x, `${this.prefix}.weight`), this.b) as tf.Tensor2D; // [N, dOut]
    ctx.adapters.forEach((lora, i) => {
      if (!lora.config.targets.includes(this.module)) return;
      const [a, b] = this.factors(lora);
      let delta = loraBranch(x, a, b, loraScale(lora.config)); // [N, dOut]
      const gate = ctx.rowGates[i];
      if (gate) delta = tf.mul(delta, gate);
      y = tf.add(y, delta);
    });
    return y;
  }

  /** A [r, dIn] and B [dOut, r] of this projection, checked so a wrong adapter fails with its name, not a matMul error. */
  private factors(lora: LoraParams): [tf.Tensor2D, tf.Tensor2D] {
    const prefix = this.prefix;
    const a = lora.tensors.get(`${prefix}.lora_A.weight`);
    const b = lora.tensors.get(`${prefix}.lora_B.weight`);
    if (!a || !b) throw new AdapterError(`adapter targets ${this.module} but lacks ${prefix}.lora_A/lora_B.weight`, 'missing_adapter_tensor');
    const [dIn, dOut] = this.shape;
    const r = lora.config.r;
    if (a.shape[0] !== r || a.shape[1] !== dIn || b.shape[0] !== dOut || b.shape[1] !== r) {
      throw new AdapterError(
        `${prefix}: lora_A is [${a.shape.join(', ')}] and lora_B [${b.shape.join(', ')}], expected [${r}, ${dIn}] and [${dOut}, ${r}]`,
        'adapter_shape',
      );
    }
    return [a as tf.Tensor2D, b as tf.Tensor2D];
  }
}

class LayerNorm {
  private readonly g: tf.Tensor1D; // [C]
  private readonly b: tf.Tensor1D; // [C]
  constructor(
    weights: Weights,
    prefix: string,
    private readonly eps: number,
  ) {
    this.g = weights.get(`${prefix}.weight`) as tf.Tensor1D;
    this.b = weights.get(`${prefix}.bias`) as tf.Tensor1D;
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return layerNorm(x, this.g, this.b, this.eps);
  }
}

class CausalSelfAttention {
  private readonly cAttn: Conv1D;
  private readonly cProj: Conv1D;
  constructor(
    weights: Weights,
    layer: number,
    private readonly config: GPT2Config,
  ) {
    this.cAttn = new Conv1D(weights, layer, 'attn.c_attn');
    this.cProj = new Conv1D(weights, layer, 'attn.c_proj');
  }

  apply(x: tf.Tensor2D, ctx: Ctx): tf.Tensor2D {
    const merged = causalAttention(this.cAttn.apply(x, ctx), ctx.batch, ctx.time, this.config.nHead); // [N, 3C] -> [N, C]
    return this.cProj.apply(merged, ctx);
  }
}

class Mlp {
  private readonly cFc: Conv1D;
  private readonly cProj: Conv1D;
  constructor(weights: Weights, layer: number) {
    this.cFc = new Conv1D(weights, layer, 'mlp.c_fc');
    this.cProj = new Conv1D(weights, layer, 'mlp.c_proj');
  }

  apply(x: tf.Tensor2D, ctx: Ctx): tf.Tensor2D {
    return this.cProj.apply(gelu(this.cFc.apply(x, ctx)), ctx); // [N, 4C] -> [N, C]
  }
}

class Block {
  private readonly ln1: LayerNorm;
  private readonly attn: CausalSelfAttention;
  private readonly ln2: LayerNorm;
  private readonly mlp: Mlp;
  constructor(weights: Weights, layer: number, config: GPT2Config) {
    this.ln1 = new LayerNorm(weights, `h.${layer}.ln_1`, config.layerNormEpsilon);
    this.attn = new CausalSelfAttention(weights, layer, config);
    this.ln2 = new LayerNorm(weights, `h.${layer}.ln_2`, config.layerNormEpsilon);
    this.mlp = new Mlp(weights, layer);
  }

  apply(x: tf.Tensor2D, ctx: Ctx): tf.Tensor2D {
    const afterAttn = tf.add(x, this.attn.apply(this.ln1.apply(x), ctx)) as tf.Tensor2D;
    return tf.add(afterAttn, this.mlp.apply(this.ln2.apply(afterAttn), ctx)) as tf.Tensor2D;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// config

export interface GPT2Config {
  readonly vocabSize: number; // 257 for Lethe's byte-level tokenizer (256 bytes + <|endoftext|>), 50257 for GPT-2 BPE
  readonly nPositions: number; // longest sequence (learned position embeddings)
  readonly nEmbd: number; // model width C
  readonly nLayer: number;
  readonly nHead: number; // must divide nEmbd
  readonly layerNormEpsilon: number; // 1e-5, as GPT-2
}

/**
 * The embedded default model: byte-level and small enough that a LoRA backprop step (classify, grads of A, B and the
 * head) on batch 16 × 128 tokens takes about 150 ms on the wasm backend (one thread, SIMD). CPU time per step on this
 * project's 2-core AMD EPYC build machine (min of 6, measured while other jobs loaded both cores, so an idle machine
 * is somewhat faster), forward / LoRA backprop:
 *   nEmbd  64, nLayer 2, nHead 2:  52 /  174 ms   ← chosen
 *   nEmbd  96, nLayer 2, nHead 2:  94 /  281 ms
 *   nEmbd 128, nLayer 2, nHead 2: 139 /  352 ms
 *   nEmbd  64, nLayer 4, nHead 2: 115 /  397 ms
 *   nEmbd 128, nLayer 4, nHead 4: 333 /  969 ms
 * The floor is arithmetic: XNNPACK reaches ≈ 21 GFLOPS here, and 128 × 4 layers needs ≈ 7.5 GFLOP per backprop step
 * (≥ 360 ms). Two heads rather than four: fewer, larger per-head products (see ops.ts).
 */
export const TINY_CONFIG: GPT2Config = Object.freeze({
  vocabSize: 257,
  nPositions: 256,
  nEmbd: 64,
  nLayer: 2,
  nHead: 2,
  layerNormEpsilon: 1e-5,
});

/**
 * GPT-2 small's width (768, 12 heads) with two layers and the byte vocabulary: the benchmarks' per-layer cost. wasm,
 * batch 8 × 128, CPU time as above: forward 1.33 s (≈ 22 GFLOPS, i.e. at XNNPACK's peak), LoRA backprop 3.58 s.
 */
export const GPT2_SMALL_WIDTH: GPT2Config = Object.freeze({
  vocabSize: 257,
  nPositions: 128,
  nEmbd: 768,
  nLayer: 2,
  nHead: 12,
  layerNormEpsilon: 1e-5,
});

export function validateConfig(config: GPT2Config): void {
  for (const key of ['vocabSize', 'nPositions', 'nEmbd', 'nLayer', 'nHead'] as const) {
    const v = config[key];
    if (!Number.isInteger(v) || v < 1) throw new ModelConfigError(`GPT2Config.${key} must be a positive integer, got ${v}`);
  }
  if (config.nEmbd % config.nHead !== 0) {
    throw new ModelConfigError(`GPT2Config.nEmbd (${config.nEmbd}) must be divisible by nHead (${config.nHead})`);
  }
  if (!(config.layerNormEpsilon > 0)) throw new ModelConfigError(`GPT2Config.layerNormEpsilon must be positive, got ${config.layerNormEpsilon}`);
}

/** Every base weight's HF name and shape, in HF order (wte, wpe, h.0 … h.{L-1}, ln_f). */
export function weightShapes(config: GPT2Config): Map<string, number[]> {
  validateConfig(config);
  const c = config.nEmbd;
  const shapes = new Map<string, number[]>([
    ['wte.weight', [config.vocabSize, c]],
    ['wpe.weight', [config.nPositions, c]],
  ]);
  for (let i = 0; i < config.nLayer; i++) {
    const p = `h.${i}.`;
    shapes.set(`${p}ln_1.weight`, [c]).set(`${p}ln_1.bias`, [c]);
    shapes.set(`${p}attn.c_attn.weight`, [c, 3 * c]).set(`${p}attn.c_attn.bias`, [3 * c]);
    shapes.set(`${p}attn.c_proj.weight`, [c, c]).set(`${p}attn.c_proj.bias`, [c]);
    shapes.set(`${p}ln_2.weight`, [c]).set(`${p}ln_2.bias`, [c]);
    shapes.set(`${p}mlp.c_fc.weight`, [c, 4 * c]).set(`${p}mlp.c_fc.bias`, [4 * c]);
    shapes.set(`${p}mlp.c_proj.weight`, [4 * c, c]).set(`${p}mlp.c_proj.bias`, [c]);
  }
  shapes.set('ln_f.weight', [c]).set('ln_f.bias', [c]);
  return shapes;
}

/** Throws a WeightsError listing every missing, unexpected or mis-shaped tensor. */
export function validateWeights(config: GPT2Config, weights: TensorMap): void {
  const shapes = weightShapes(config);
  const missing = [...shapes.keys()].filter((n) => !weights.has(n));
  if (missing.length > 0) {
    throw new WeightsError(`${missing.length} GPT-2 weight(s) missing: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`, 'missing_weight', missing);
  }
  const extra = [...weights.keys()].filter((n) => !shapes.has(n));
  if (extra.length > 0) {
    throw new WeightsError(`unexpected weight(s) for GPT-2: ${extra.slice(0, 8).join(', ')} (names take no "transformer." prefix)`, 'unexpected_weight', extra);
  }
  const bad: string[] = [];
  for (const [name, want] of shapes) {
    const t = weights.get(name)!;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]) || t.data.length !== sizeOf(want)) {
      bad.push(`${name} is [${t.shape.join(', ')}], expected [${want.join(', ')}]`);
    }
  }
  if (bad.length > 0) throw new WeightsError(`mis-shaped GPT-2 weight(s): ${bad.slice(0, 8).join('; ')}`, 'weight_shape', bad);
}

/**
 * HF GPT2PreTrainedModel._init_weights: weights and embeddings ~ N(0, 0.02²), biases 0, LayerNorm gain 1; the
 * residual projections (attn.c_proj, mlp.c_proj) ~ N(0, (0.02/√(2·nLayer))²) per GPT-2 §2.3. Seeded per tensor.
 */
export function initWeights(config: GPT2Config, seed: string): Map<string, HostTensor> {
  const residualStd = 0.02 / Math.sqrt(2 * config.nLayer);
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of weightShapes(config)) {
    const n = sizeOf(shape);
    let data: Float32Array;
    if (name.includes('ln_')) data = new Float32Array(n).fill(name.endsWith('.weight') ? 1 : 0);
    else if (name.endsWith('.bias')) data = new Float32Array(n);
    else data = seededNormal(n, name.endsWith('c_proj.weight') ? residualStd : 0.02, seed, name);
    out.set(name, { shape, data });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// the model

export interface GPT2Options {
  /** Base weights become tf.Variables (pretraining); the embedding is then a one-hot matMul, whose gradient the wasm
   * backend has (gather's gradient has no wasm kernel). Default false: frozen tensors and gather. */
  readonly trainableBase?: boolean;
}

/** How classify reduces a sequence's hidden states to one vector. */
export type Pooling = 'mean' | 'last';

/** [B, B·T]: row i averages the real tokens of sequence i (weights mask/count on its own T columns). */
function meanSelection(mask: tf.Tensor2D): tf.Tensor2D {
  const [b, t] = mask.shape;
  const weights = tf.div(mask, tf.maximum(tf.sum(mask, 1, true), 1)); // [B, T]
  const blockDiagonal = tf.mul(tf.expandDims(tf.eye(b), 2), tf.expandDims(weights, 1)); // [B, B, T]
  return tf.reshape(blockDiagonal, [b, b * t]);
}

/** [B, B·T]: row i is one-hot at sequence i's last real token. */
function lastSelection(mask: tf.Tensor2D): tf.Tensor2D {
  const [b, t] = mask.shape;
  const last = tf.maximum(tf.sub(tf.sum(mask, 1), 1), 0); // [B] position of the last token
  const row = tf.cast(tf.add(tf.mul(tf.range(0, b), t), last), 'int32') as tf.Tensor1D; // [B] row in [B·T]
  return tf.cast(tf.oneHot(row, b * t), 'float32') as tf.Tensor2D;
}

export class GPT2 {
  readonly config: GPT2Config;
  private readonly params: Map<string, tf.Tensor>; // HF name -> tensor (tf.Variable when trainableBase)
  private readonly trainable: boolean;
  private readonly transposes = new Map<string, tf.Tensor2D>(); // Wᵀ of frozen weights, made on first backprop
  private readonly weights: Weights = {
    get: (name) => this.param(name),
    times: (x, name) =>
      this.trainable
        ? matMul(x, this.param(name) as tf.Tensor2D)
        : frozenMatMul(x, this.param(name) as tf.Tensor2D, () => this.transposed(name)),
  };
  private readonly blocks: Block[];
  private readonly lnF: LayerNorm;
  private disposed = false;

  /** Uploads `weights` (validated against `config`); the model owns the tensors until dispose(). */
  constructor(config: GPT2Config, weights: TensorMap, opts: GPT2Options = {}) {
    validateWeights(config, weights);
    this.config = Object.freeze({ ...config });
    this.trainable = opts.trainableBase ?? false;
    this.params = new Map();
    for (const name of weightShapes(config).keys()) {
      const w = weights.get(name)!;
      const t = tf.tensor(w.data, [...w.shape], 'float32');
      // keep: a model built inside a caller's tf.tidy must outlive it. Variables are left unnamed: names are global.
      this.params.set(name, this.trainable ? tf.variable(t, true) : tf.keep(t));
      if (this.trainable) t.dispose();
    }
    this.blocks = Array.from({ length: config.nLayer }, (_, i) => new Block(this.weights, i, config));
    this.lnF = new LayerNorm(this.weights, 'ln_f', config.layerNormEpsilon);
  }

  /** A freshly initialised model (HF initialisation, see initWeights). */
  static init(config: GPT2Config, seed: string, opts: GPT2Options = {}): GPT2 {
    return new GPT2(config, initWeights(config, seed), opts);
  }

  /** The base weights as variables, in HF order, when trainableBase; otherwise none. */
  variables(): tf.Variable[] {
    return this.trainable ? [...this.params.values()] as tf.Variable[] : [];
  }

  /**
   * hidden: the final-LayerNorm output [B, T, C]; layers: each block's output [B, T, C] when collectHiddens (O3's OOD
   * features), else []. ids: [B, T] token ids < vocabSize, T ≤ nPositions (float ids are cast to int32).
   */
  forward(ids: tf.Tensor2D, lora?: LoraInput, opts: { collectHiddens?: boolean } = {}): { hidden: tf.Tensor3D; layers: tf.Tensor3D[] } {
    const ctx = this.context(ids, lora);
    const { batch, time } = ctx;
    const c = this.config.nEmbd;
    const flat = tf.reshape(ids.dtype === 'int32' ? ids : tf.cast(ids, 'int32'), [batch * time]) as tf.Tensor1D;
    const wte = this.param('wte.weight') as tf.Tensor2D;
    const tok = this.trainable
      ? selectRows(tf.cast(tf.oneHot(flat, this.config.vocabSize), 'float32') as tf.Tensor2D, wte) // [N, V] x [V, C]
      : tf.gather(wte, flat); // [N, C]
    const pos = tf.slice(this.param('wpe.weight'), [0, 0], [time, c]); // [T, C]
    let x = tf.reshape(tf.add(tf.reshape(tok, [batch, time, c]), pos), [batch * time, c]) as tf.Tensor2D; // [N, C]
    const layers: tf.Tensor3D[] = [];
    for (const block of this.blocks) {
      x = block.apply(x, ctx);
      if (opts.collectHiddens) layers.push(tf.reshape(x, [batch, time, c]));
    }
    return { hidden: tf.reshape(this.lnF.apply(x), [batch, time, c]), layers };
  }

  /** Next-token logits [B, T, V] from the head tied to wte. */
  lmLogits(ids: tf.Tensor2D, lora?: LoraInput): tf.Tensor3D {
    const { hidden } = this.forward(ids, lora);
    const [b, t, c] = hidden.shape;
    const h = tf.reshape(hidden, [b * t, c]) as tf.Tensor2D;
    const wte = this.param('wte.weight') as tf.Tensor2D; // [V, C]
    const logits = this.trainable
      ? matMul(h, tf.transpose(wte)) // [N, C] x [C, V]
      : frozenMatMul(h, this.transposed('wte.weight'), () => wte);
    return tf.reshape(logits, [b, t, this.config.vocabSize]);
  }

  /**
   * Classification logits [B, numLabels]: score.weight (from the first adapter that has one) applied to a pooled
   * hidden state. `mean` (the default) averages the hidden states of the real tokens: with a small model, one position
   * of a causal stack summarises a long text poorly (spam accuracy of the tiny base: see BENCHMARKS.md). `last` takes
   * the last real token, as HF GPT2ForSequenceClassification. mask [B, T]: 1 token, 0 pad, padding on the right; rows
   * are picked by a matMul with a [B, B·T] selection matrix, not gather, so it differentiates on wasm.
   */
  classify(ids: tf.Tensor2D, mask: tf.Tensor2D, lora: LoraInput, pooling: Pooling = 'mean'): tf.Tensor2D {
    const adapters = asList(lora);
    const head = adapters.find((a) => a.tensors.has(HEAD_NAME))?.tensors.get(HEAD_NAME);
    if (!head) throw new AdapterError(`classify needs a head: no adapter holds ${HEAD_NAME} (set numLabels > 0)`, 'no_head');
    if (mask.shape[0] !== ids.shape[0] || mask.shape[1] !== ids.shape[1]) {
      throw new ModelInputError(`mask is [${mask.shape.join(', ')}] but ids are [${ids.shape.join(', ')}]; they must match`);
    }
    const { hidden } = this.forward(ids, lora);
    const [b, t] = ids.shape;
    const pick = pooling === 'mean' ? meanSelection(mask) : lastSelection(mask); // [B, N]
    const pooled = selectRows(pick, tf.reshape(hidden, [b * t, this.config.nEmbd])); // [B, C]
    return matMul(pooled, tf.transpose(head) as tf.Tensor2D); // [B, numLabels]
  }

  /** Current base weights (copies), HF names, HF order. */
  hostWeights(): Map<string, HostTensor> {
    this.guard();
    const out = new Map<string, HostTensor>();
    for (const [name, t] of this.params) out.set(name, { shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) });
    return out;
  }

  /** Frees the weights. Idempotent; any later call throws ModelDisposedError. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [...this.params.values(), ...this.transposes.values()]) t.dispose();
  }

  private param(name: string): tf.Tensor {
    return this.params.get(name)!;
  }

  /**
   * Wᵀ of a frozen weight, made on first use and kept: backprop through the frozen base needs dX = dY·Wᵀ every step
   * and a wasm transpose costs ~6 ns per element (GPT-2's wteᵀ: ~0.2 s). Costs one extra copy of each weight used.
   */
  private transposed(name: string): tf.Tensor2D {
    let t = this.transposes.get(name);
    if (!t) {
      t = tf.keep(tf.transpose(this.param(name) as tf.Tensor2D));
      this.transposes.set(name, t);
    }
    return t;
  }

  private guard(): void {
    if (this.disposed) throw new ModelDisposedError('this GPT2 was disposed; build a new one from its weights');
  }

  private context(ids: tf.Tensor2D, lora: LoraInput | undefined): Ctx {
    this.guard();
    if (ids.rank !== 2) throw new ModelInputError(`ids must be [batch, time], got rank ${ids.rank}`);
    const [batch, time] = ids.shape;
    if (time < 1 || time > this.config.nPositions) {
      throw new ModelInputError(`sequence length ${time} must be between 1 and nPositions (${this.config.nPositions}); truncate the input`);
    }
    const adapters = asList(lora);
    const rowGates = adapters.map((a) => {
      if (!a.gate) return undefined;
      if (a.gate.rank !== 1 || a.gate.shape[0] !== batch) throw new ModelInputError(`an adapter gate must be [${batch}], got [${a.gate.shape.join(', ')}]`);
      return tf.reshape(tf.tile(tf.expandDims(a.gate, 1), [1, time]), [batch * time, 1]); // [N, 1]
    });
    return { batch, time, adapters, rowGates };
  }
}

function asList(lora: LoraInput | undefined): readonly LoraParams[] {
  if (!lora) return [];
  return Array.isArray(lora) ? (lora as readonly LoraParams[]) : [lora as LoraParams];
}
