/**
 * An independent GPT-2 forward for tests: plain loops over float64 arrays, no tfjs, written straight from the GPT-2
 * definition (HF modeling_gpt2.py) so that it shares no code with src/model/gpt2.ts. Slow; for tiny models only.
 */
import type { TensorMap } from '../../src/tensors/host.js';

export interface RefConfig {
  vocabSize: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  layerNormEpsilon: number;
}

type Vec = Float64Array;

function w(weights: TensorMap, name: string): Float32Array {
  const t = weights.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  return t.data;
}

function layerNorm(x: Vec, g: Float32Array, b: Float32Array, eps: number): Vec {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let variance = 0;
  for (const v of x) variance += (v - mean) ** 2;
  variance /= x.length;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = ((x[i]! - mean) / Math.sqrt(variance + eps)) * g[i]! + b[i]!;
  return out;
}

/** y = x W + b with W stored [dIn, dOut] row-major (HF Conv1D). */
function conv1d(x: Vec, weight: Float32Array, bias: Float32Array): Vec {
  const dOut = bias.length;
  const out = new Float64Array(dOut);
  for (let j = 0; j < dOut; j++) out[j] = bias[j]!;
  for (let i = 0; i < x.length; i++) {
    for (let j = 0; j < dOut; j++) out[j]! += x[i]! * weight[i * dOut + j]!;
  }
  return out;
}

function geluTanh(v: number): number {
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
}

/** Hidden states after ln_f, [T][C], for one sequence. */
export function referenceHidden(config: RefConfig, weights: TensorMap, ids: readonly number[]): Vec[] {
  const c = config.nEmbd;
  const d = c / config.nHead;
  const wte = w(weights, 'wte.weight');
  const wpe = w(weights, 'wpe.weight');
  let xs: Vec[] = ids.map((id, t) => {
    const x = new Float64Array(c);
    for (let k = 0; k < c; k++) x[k] = wte[id * c + k]! + wpe[t * c + k]!;
    return x;
  });
  for (let l = 0; l < config.nLayer; l++) {
    const p = (s: string): Float32Array => w(weights, `h.${l}.${s}`);
    const qkv = xs.map((x) => conv1d(layerNorm(x, p('ln_1.weight'), p('ln_1.bias'), config.layerNormEpsilon), p('attn.c_attn.weight'), p('attn.c_attn.bias')));
    const attnOut = xs.map((_, t) => {
      const merged = new Float64Array(c);
      for (let h = 0; h < config.nHead; h++) {
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let k = 0; k < d; k++) dot += qkv[t]![h * d + k]! * qkv[s]![c + h * d + k]!;
          scores.push(dot / Math.sqrt(d));
        }
        const max = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) {
          for (let k = 0; k < d; k++) merged[h * d + k]! += (e[s]! / z) * qkv[s]![2 * c + h * d + k]!;
        }
      }
      return conv1d(merged, p('attn.c_proj.weight'), p('attn.c_proj.bias'));
    });
    xs = xs.map((x, t) => x.map((v, k) => v + attnOut[t]![k]!));
    xs = xs.map((x) => {
      const hFc = conv1d(layerNorm(x, p('ln_2.weight'), p('ln_2.bias'), config.layerNormEpsilon), p('mlp.c_fc.weight'), p('mlp.c_fc.bias'));
      const m = conv1d(hFc.map(geluTanh), p('mlp.c_proj.weight'), p('mlp.c_proj.bias'));
      return x.map((v, k) => v + m[k]!);
    });
  }
  return xs.map((x) => layerNorm(x, w(weights, 'ln_f.weight'), w(weights, 'ln_f.bias'), config.layerNormEpsilon));
}

/** Next-token logits [T][V] through the head tied to wte. */
export function referenceLogits(config: RefConfig, weights: TensorMap, ids: readonly number[]): Vec[] {
  const wte = w(weights, 'wte.weight');
  const c = config.nEmbd;
  return referenceHidden(config, weights, ids).map((hdn) => {
    const out = new Float64Array(config.vocabSize);
    for (let v = 0; v < config.vocabSize; v++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += hdn[k]! * wte[v * c + k]!;
      out[v] = s;
    }
    return out;
  });
}

/** Largest |a − b| over two equally long sequences. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
