/**
 * Matrix products, attention, LoRA and GELU with hand-written gradients that stay on tfjs-backend-wasm's fast paths.
 *
 * Measured on the wasm backend (one thread, SIMD), which shaped every choice here:
 * - a 2-D matMul with neither operand transposed runs through XNNPACK (≈ 20 GFLOPS); a transposed or batched
 *   (rank > 2) matMul falls back to a plain loop, 5–13× slower — and tfjs's stock MatMul gradient is exactly the
 *   transposed form (dA = dY·Bᵀ);
 * - an explicit 2-D transpose of an activation costs ≈ 6 ns per element (a [2048, 512] copy: 6.5 ms), so backward
 *   passes below never transpose an [N, ·] activation, only weights (cached), [N, r] LoRA factors and [T, T] slices;
 * - a [T, T]-sliced 3-D transpose is ≈ 1.5 ns per element; tanh is ~30× slower than sigmoid.
 * On the cpu and tensorflow backends the same ops compute the same values by the same math.
 *
 * Every temporary a gradient needs goes through `save` (tf.grads disposes forward intermediates before backprop);
 * model weights are captured directly, since they outlive the step.
 */
import * as tf from '@tensorflow/tfjs';

type Save = (tensors: tf.Tensor[]) => void;
type CustomGradFn = Parameters<typeof tf.customGrad>[0];

/** a [M, K] · b [K, N] → [M, N], with gradients for both operands. */
export function matMul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return tf.customGrad(((x: tf.Tensor2D, y: tf.Tensor2D, save: Save) => {
    save([x, y]);
    return {
      value: tf.matMul(x, y),
      gradFunc: (dy: tf.Tensor2D, [sx, sy]: tf.Tensor2D[]) => [tf.matMul(dy, tf.transpose(sy!)), tf.matMul(tf.transpose(sx!), dy)],
    };
  }) as CustomGradFn)(a, b) as tf.Tensor2D;
}

/**
 * x [M, K] · w [K, N] → [M, N] for a frozen weight: only x gets a gradient, dx = dY·wᵀ, with wᵀ [N, K] supplied by
 * the caller (computed once per weight, not once per step). w and wᵀ must outlive the backward pass.
 */
export function frozenMatMul(x: tf.Tensor2D, w: tf.Tensor2D, wT: () => tf.Tensor2D): tf.Tensor2D {
  return tf.customGrad(((xi: tf.Tensor2D) => ({
    value: tf.matMul(xi, w),
    gradFunc: (dy: tf.Tensor2D) => tf.matMul(dy, wT()),
  })) as CustomGradFn)(x) as tf.Tensor2D;
}

/**
 * pick [M, K] · h [K, N] → [M, N] where pick is a constant selector (one-hot rows): only h gets a gradient,
 * dh = pickᵀ·dY. Picks rows without gather, whose gradient the wasm backend lacks.
 */
export function selectRows(pick: tf.Tensor2D, h: tf.Tensor2D): tf.Tensor2D {
  return tf.customGrad(((hi: tf.Tensor2D, save: Save) => {
    save([pick]);
    return { value: tf.matMul(pick, hi), gradFunc: (dy: tf.Tensor2D, [sp]: tf.Tensor2D[]) => tf.matMul(tf.transpose(sp!), dy) };
  }) as CustomGradFn)(h) as tf.Tensor2D;
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, −1e9 above (exp underflows to exactly 0). */
function causalMask(t: number): tf.Tensor2D {
  const m = new Float32Array(t * t);
  for (let i = 0; i < t; i++) m.fill(-1e9, i * t + i + 1, (i + 1) * t);
  return tf.tensor2d(m, [t, t]);
}

/** Geometry of one attention call: B sequences of T tokens, H heads of width D; S = B·H slices. */
interface Heads {
  readonly b: number;
  readonly t: number;
  readonly h: number;
  readonly d: number;
}

/**
 * Copies head slices out of a row-major [B·T, width] host matrix: slice s = (batch i, head j) takes columns
 * offset + j·D … offset + (j+1)·D of rows i·T … (i+1)·T. Returns [S, T, D] (or [S, D, T] when `transposed`), flat.
 */
function gatherHeads(src: Float32Array, width: number, offset: number, g: Heads, transposed: boolean): Float32Array {
  const { b, t, h, d } = g;
  const out = new Float32Array(b * h * t * d);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < h; j++) {
      const base = (i * h + j) * t * d;
      for (let r = 0; r < t; r++) {
        const from = (i * t + r) * width + offset + j * d;
        for (let c = 0; c < d; c++) out[base + (transposed ? c * t + r : r * d + c)] = src[from + c]!;
      }
    }
  }
  return out;
}

/** The inverse of gatherHeads (untransposed): writes [S, T, D] slices into columns of a [B·T, width] matrix. */
function scatterHeads(slices: Float32Array, dst: Float32Array, width: number, offset: number, g: Heads): void {
  const { b, t, h, d } = g;
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < h; j++) {
      const base = (i * h + j) * t * d;
      for (let r = 0; r < t; r++) dst.set(slices.subarray(base + r * d, base + (r + 1) * d), (i * t + r) * width + offset + j * d);
    }
  }
}

/** S device tensors [rows, cols] from a flat host stack. */
function upload(flat: Float32Array, rows: number, cols: number): tf.Tensor2D[] {
  const n = rows * cols;
  return Array.from({ length: flat.length / n }, (_, s) => tf.tensor2d(flat.subarray(s * n, (s + 1) * n), [rows, cols]));
}

/** The 2-D slices of a stack [S, M, K], via one download (tf.unstack on wasm copies the whole stack per slice). */
function slices(x: tf.Tensor3D): tf.Tensor2D[] {
  return upload(x.dataSync() as Float32Array, x.shape[1], x.shape[2]);
}

/** out[s] = a[s] · b[s] for two lists of 2-D slices, stacked: [S, M, K] · [S, K, N] → [S, M, N]. */
function pairwise(a: readonly tf.Tensor2D[], b: readonly tf.Tensor2D[]): tf.Tensor3D {
  return tf.stack(a.map((ai, s) => tf.matMul(ai, b[s]!))) as tf.Tensor3D;
}

/**
 * Causal multi-head attention (Vaswani et al. 2017, eq. 1; GPT-2's masked variant): qkv [N = B·T, 3C] holds
 * q | k | v with heads contiguous in each; returns the heads' outputs merged back to [N, C], before c_proj.
 *
 * 'stock' is the textbook reshape → batched matMul → softmax → matMul with tfjs autograd. 'sliced' computes the same
 * per (batch, head) slice with 2-D matMuls, because the wasm backend runs batched matMuls ~10× slower than 2-D ones;
 * the head slices are arranged on the host (one download, one upload per stage) and its backward is written out,
 * with P = softmax(q kᵀ·scale + mask): dV = Pᵀ dY, dP = dY Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale, dQ = dS K,
 * dK = dSᵀ Q. Every product keeps its right operand [T, D]-sized, which XNNPACK packs cheaply.
 */
export function causalAttention(qkv: tf.Tensor2D, batch: number, time: number, heads: number, impl: 'stock' | 'sliced' = tf.getBackend() === 'wasm' ? 'sliced' : 'stock'): tf.Tensor2D {
  const c = qkv.shape[1] / 3;
  const g: Heads = { b: batch, t: time, h: heads, d: c / heads };
  return impl === 'stock' ? stockAttention(qkv, g) : slicedAttention(qkv, g);
}

function stockAttention(qkv: tf.Tensor2D, g: Heads): tf.Tensor2D {
  const { b, t, h, d } = g;
  const [q, k, v] = tf.unstack(tf.transpose(tf.reshape(qkv, [b, t, 3, h, d]), [2, 0, 3, 1, 4])) as tf.Tensor4D[]; // [B, H, T, D]
  const scores = tf.add(tf.mul(tf.matMul(q!, k!, false, true), 1 / Math.sqrt(d)), causalMask(t)); // [B, H, T, T]
  const y = tf.matMul(tf.softmax(scores), v!); // [B, H, T, D]
  return tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [b * t, h * d]);
}

function slicedAttention(qkv: tf.Tensor2D, g: Heads): tf.Tensor2D {
  const { b, t, h, d } = g;
  const c = h * d;
  const scale = 1 / Math.sqrt(d);
  return tf.customGrad(((x: tf.Tensor2D, save: Save) => {
    const host = x.dataSync() as Float32Array; // [N, 3C], kept by this closure for the backward pass
    const part = (k: 0 | 1 | 2, transposed: boolean): tf.Tensor2D[] =>
      upload(gatherHeads(host, 3 * c, k * c, g, transposed), transposed ? d : t, transposed ? t : d);
    const p = tf.softmax(tf.add(tf.mul(pairwise(part(0, false), part(1, true)), scale), causalMask(t))) as tf.Tensor3D; // [S, T, T]
    save([p]);
    const y = new Float32Array(b * t * c);
    scatterHeads(pairwise(slices(p), part(2, false)).dataSync() as Float32Array, y, c, 0, g);
    return {
      value: tf.tensor2d(y, [b * t, c]),
      gradFunc: (dy: tf.Tensor2D, [sp]: tf.Tensor3D[]) => {
        const dys = upload(gatherHeads(dy.dataSync() as Float32Array, c, 0, g, false), t, d); // S × [T, D]
        const dP = pairwise(dys, part(2, true)); // dY Vᵀ, [S, T, T]
        const dV = pairwise(slices(tf.transpose(sp!, [0, 2, 1])), dys);
        const dS = tf.mul(tf.mul(sp!, tf.sub(dP, tf.sum(tf.mul(dP, sp!), -1, true))), scale) as tf.Tensor3D;
        const dQ = pairwise(slices(dS), part(1, false));
        const dK = pairwise(slices(tf.transpose(dS, [0, 2, 1])), part(0, false));
        const dx = new Float32Array(b * t * 3 * c);
        [dQ, dK, dV].forEach((grad, k) => scatterHeads(grad.dataSync() as Float32Array, dx, 3 * c, k * c, g));
        return tf.tensor2d(dx, [b * t, 3 * c]);
      },
    };
  }) as CustomGradFn)(qkv) as tf.Tensor2D;
}

/**
 * The LoRA branch scale · x Aᵀ Bᵀ (Hu et al. 2021, eq. 3) for x [N, dIn], A [r, dIn], B [dOut, r] → [N, dOut].
 * Backward, with u = x Aᵀ and g = dY·scale: dx = (g B) A, dA = (g B)ᵀ x, dB = (uᵀ g)ᵀ — only [N, r]-sized tensors
 * and the factors are ever transposed.
 */
export function loraBranch(x: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, scale: number): tf.Tensor2D {
  return tf.customGrad(((xi: tf.Tensor2D, ai: tf.Tensor2D, bi: tf.Tensor2D, save: Save) => {
    const u = tf.matMul(xi, tf.transpose(ai)); // [N, r]
    save([xi, ai, bi, u]);
    return {
      value: tf.mul(tf.matMul(u, tf.transpose(bi)), scale) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, [sx, sa, sb, su]: tf.Tensor2D[]) => {
        const g = tf.mul(dy, scale) as tf.Tensor2D; // [N, dOut]
        const gB = tf.matMul(g, sb!); // [N, r]
        return [tf.matMul(gB, sa!), tf.matMul(tf.transpose(gB), sx!), tf.transpose(tf.matMul(tf.transpose(su!), g))];
      },
    };
  }) as CustomGradFn)(x, a, b) as tf.Tensor2D;
}

const GELU_A = 2 * Math.sqrt(2 / Math.PI);
const GELU_B = GELU_A * 0.044715;

/**
 * GELU, tanh approximation (HF "gelu_new"): 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))), computed as the identical
 * x·σ(z) with z = x(a + b x²), a = 2√(2/π), b = 0.044715·a (wasm's sigmoid is ~30× faster than its tanh), and a
 * hand-written derivative, σ + x·σ(1 − σ)·(a + 3b x²), in a third of the ops autodiff would record.
 */
export function gelu(x: tf.Tensor2D): tf.Tensor2D {
  return tf.customGrad(((xi: tf.Tensor2D, save: Save) => {
    const s = tf.sigmoid(tf.mul(xi, tf.add(tf.mul(tf.mul(xi, xi), GELU_B), GELU_A)));
    save([xi, s]); // saving copies on wasm; x² is cheaper to recompute than to keep
    return {
      value: tf.mul(xi, s) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, [sx, ss]: tf.Tensor2D[]) => {
        const slope = tf.mul(tf.mul(sx!, tf.mul(ss!, tf.sub(1, ss!))), tf.add(tf.mul(tf.mul(sx!, sx!), 3 * GELU_B), GELU_A));
        return tf.mul(dy, tf.add(ss!, slope));
      },
    };
  }) as CustomGradFn)(x) as tf.Tensor2D;
}

/**
 * LayerNorm over the last axis (Ba et al. 2016; biased variance, as torch.nn.LayerNorm): y = x̂·g + b with
 * x̂ = (x − μ)·r, r = 1/√(σ² + eps). x [N, C], g and b [C]. Backward, written out (autodiff records ~3× the ops):
 * dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂)) with dx̂ = dY·g, dg = Σ_rows dY ⊙ x̂, db = Σ_rows dY.
 */
export function layerNorm(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.customGrad(((xi: tf.Tensor2D, gi: tf.Tensor1D, bi: tf.Tensor1D, save: Save) => {
    const centred = tf.sub(xi, tf.mean(xi, -1, true));
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(centred), -1, true), eps)); // [N, 1]
    const xHat = tf.mul(centred, r);
    save([xHat, r, gi]);
    return {
      value: tf.add(tf.mul(xHat, gi), bi) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, [sxHat, sr, sg]: tf.Tensor[]) => {
        const dxHat = tf.mul(dy, sg!);
        const dx = tf.mul(sr!, tf.sub(tf.sub(dxHat, tf.mean(dxHat, -1, true)), tf.mul(sxHat!, tf.mean(tf.mul(dxHat, sxHat!), -1, true))));
        return [dx, tf.sum(tf.mul(dy, sxHat!), 0), tf.sum(dy, 0)];
      },
    };
  }) as CustomGradFn)(x, g, b) as tf.Tensor2D;
}
