/**
 * Matrix products whose forward AND backward passes stay on tfjs-backend-wasm's fast path.
 *
 * Why: the wasm backend sends a 2-D, non-transposed matMul through XNNPACK (≈ 20 GFLOPS on one thread here), but a
 * transposed or batched (rank > 2) matMul through a plain loop, ≈ 10× slower. tfjs's stock MatMul gradient is
 * exactly the transposed form (dA = dY·Bᵀ via transposeB), so backprop through a GPT-2 spent most of its time there.
 * These ops transpose explicitly (a cheap copy) and multiply 2-D slices, in both directions. On the cpu and tensorflow
 * backends they compute the same values by the same math.
 *
 * Every tensor a gradient needs is passed to `save` (tf.grads disposes forward intermediates before backprop).
 */
import * as tf from '@tensorflow/tfjs';

/** Which operands of a·b need a gradient; a constant operand costs no backward matMul. */
export type GradOf = 'a' | 'b' | 'both';

type Save = (tensors: tf.Tensor[]) => void;
type CustomGradFn = Parameters<typeof tf.customGrad>[0];

/** a [M, K] · b [K, N] → [M, N]. */
export function matMul(a: tf.Tensor2D, b: tf.Tensor2D, grad: GradOf = 'both'): tf.Tensor2D {
  const dA = (dy: tf.Tensor2D, sb: tf.Tensor2D): tf.Tensor2D => tf.matMul(dy, tf.transpose(sb)); // [M, N]·[N, K]
  const dB = (dy: tf.Tensor2D, sa: tf.Tensor2D): tf.Tensor2D => tf.matMul(tf.transpose(sa), dy); // [K, M]·[M, N]
  switch (grad) {
    case 'both':
      return tf.customGrad(((x: tf.Tensor2D, y: tf.Tensor2D, save: Save) => {
        save([x, y]);
        return { value: tf.matMul(x, y), gradFunc: (dy: tf.Tensor2D, [sx, sy]: tf.Tensor2D[]) => [dA(dy, sy!), dB(dy, sx!)] };
      }) as CustomGradFn)(a, b) as tf.Tensor2D;
    case 'a':
      return tf.customGrad(((x: tf.Tensor2D, save: Save) => {
        save([b]);
        return { value: tf.matMul(x, b), gradFunc: (dy: tf.Tensor2D, [sb]: tf.Tensor2D[]) => dA(dy, sb!) };
      }) as CustomGradFn)(a) as tf.Tensor2D;
    case 'b':
      return tf.customGrad(((y: tf.Tensor2D, save: Save) => {
        save([a]);
        return { value: tf.matMul(a, y), gradFunc: (dy: tf.Tensor2D, [sa]: tf.Tensor2D[]) => dB(dy, sa!) };
      }) as CustomGradFn)(b) as tf.Tensor2D;
  }
}

/**
 * The 2-D slices of a stack, x [S, M, K] → S tensors [M, K]. On wasm, tf.unstack / tf.slice copy the WHOLE input
 * once per slice (the kernel reads it back with HEAPU8.slice), so S slices cost S full copies; reading the stack once
 * and uploading each slice costs two. Other backends use tf.unstack. No gradient flows through here: only the
 * custom gradients below use it.
 */
function slices(x: tf.Tensor3D): tf.Tensor2D[] {
  if (tf.getBackend() !== 'wasm') return tf.unstack(x) as tf.Tensor2D[];
  const [s, m, k] = x.shape;
  const host = x.dataSync() as Float32Array;
  return Array.from({ length: s }, (_, i) => tf.tensor2d(host.subarray(i * m * k, (i + 1) * m * k), [m, k]));
}

/** Per-slice 2-D products of two stacks: out[i] = a[i] · b[i]. a [S, M, K], b [S, K, N] → [S, M, N]. */
function stackedMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const bs = slices(b);
  return tf.stack(slices(a).map((ai, i) => tf.matMul(ai, bs[i]!))) as tf.Tensor3D;
}

/** [S, M, K] → [S, K, M]. Only ever applied to [S, T, D]-sized stacks, never to the [S, T, T] scores. */
function swapLast(x: tf.Tensor3D): tf.Tensor3D {
  return tf.transpose(x, [0, 2, 1]);
}

/**
 * Scaled dot-product attention with an additive mask (Vaswani et al. 2017, eq. 1), one slice per (batch, head):
 * y = softmax(q kᵀ · scale + mask) v, with k given transposed. q, v: [S = B·H, T, D]; kT: [S, D, T]; mask [T, T];
 * returns [S, T, D]. Backward, with P the softmax output, arranged so no [S, T, T] tensor is ever transposed:
 * dP = dY Vᵀ, dVᵀ = dYᵀ P, dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale, dQ = dS K, dKᵀ = Qᵀ dS.
 */
export function attention(q: tf.Tensor3D, kT: tf.Tensor3D, v: tf.Tensor3D, mask: tf.Tensor2D, scale: number): tf.Tensor3D {
  return tf.customGrad(((qi: tf.Tensor3D, ki: tf.Tensor3D, vi: tf.Tensor3D, save: Save) => {
    const p = tf.softmax(tf.add(tf.mul(stackedMatMul(qi, ki), scale), mask)) as tf.Tensor3D; // [S, T, T]
    save([qi, ki, vi, p]);
    return {
      value: stackedMatMul(p, vi), // [S, T, D]
      gradFunc: (dy: tf.Tensor3D, [sq, sk, sv, sp]: tf.Tensor3D[]) => {
        const dP = stackedMatMul(dy, swapLast(sv!)); // [S, T, T]
        const dV = swapLast(stackedMatMul(swapLast(dy), sp!)); // [S, T, D]
        const dS = tf.mul(tf.mul(sp!, tf.sub(dP, tf.sum(tf.mul(dP, sp!), -1, true))), scale) as tf.Tensor3D;
        return [stackedMatMul(dS, swapLast(sk!)), stackedMatMul(swapLast(sq!), dS), dV];
      },
    };
  }) as CustomGradFn)(q, kT, v) as tf.Tensor3D;
}

/**
 * The LoRA branch scale · x Aᵀ Bᵀ (Hu et al. 2021, eq. 3) for x [N, dIn], A [r, dIn], B [dOut, r] → [N, dOut].
 * Backward transposes only [N, r]-sized tensors and the factors: with u = x Aᵀ and g = dY·scale,
 * dx = (g B) A, dA = (g B)ᵀ x, dB = (uᵀ g)ᵀ.
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
