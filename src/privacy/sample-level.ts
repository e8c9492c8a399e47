/**
 * Sample-level DP on a client: one noisy release per training step, over a Poisson-sampled batch (rate q = B/N,
 * B the EXPECTED batch size, used as the fixed denominator so the batch's true size is not revealed).
 *
 * - DP-SGD (Abadi et al. 2016, Alg. 1; the DP-LoRA setting): per-example gradients of all trainable tensors,
 *   flattened together, each clipped to L2 norm C, summed, noised N(0, σ²C² I), divided by B.
 *   Accountant step: (q, σ).
 * - DPZero scalar (Zhang et al. 2024; ALGORITHMS.md §4): per-example projected scalars d_i clipped to [−C, C],
 *   g = Σ clip(d_i)/B + N(0, (2σC/B)²). Replacing one example moves Σ clip(d_i) by up to 2C, hence the factor 2:
 *   it is one 1-D Gaussian release with sensitivity 2C/B and noise multiplier σ. Accountant step: (q, σ).
 */
import { clipVector, checkClipNorm } from './clip.js';
import { InvalidPrivacyParameterError } from './errors.js';
import type { NoiseSource } from './gaussian.js';

/**
 * DP-SGD gradient: (Σ_i clip_C(g_i) + N(0, σ²C² I)) / B.
 * @param perExample one Float32Array per example in the batch, each = all trainable gradients flattened [dim].
 * @param dim the gradient length; needed only when the Poisson-sampled batch is empty (then the result is noise/B).
 * @returns the privatized mean gradient [dim].
 */
export function privatizeGradients(
  perExample: readonly Float32Array[],
  clip: number,
  sigma: number,
  expectedBatch: number,
  noise: NoiseSource,
  dim: number | undefined = perExample[0]?.length,
): Float32Array {
  checkClipNorm(clip);
  checkSigmaAndBatch(sigma, expectedBatch);
  if (dim === undefined) {
    throw new InvalidPrivacyParameterError('the batch is empty: pass the gradient length `dim` so noise can still be released');
  }
  const sum = new Float64Array(dim);
  perExample.forEach((g, k) => {
    if (g.length !== dim) throw new InvalidPrivacyParameterError(`example ${k} has ${g.length} gradient values, expected ${dim}`);
    const { vector } = clipVector(g, clip);
    for (let i = 0; i < dim; i++) sum[i] = sum[i]! + vector[i]!;
  });
  const z = noise(dim, sigma * clip);
  const out = new Float32Array(dim);
  for (let i = 0; i < dim; i++) out[i] = (sum[i]! + z[i]!) / expectedBatch;
  return out;
}

/**
 * DPZero's privatized projected gradient for one MeZO step: Σ_i clamp(d_i, −C, C)/B + N(0, (2σC/B)²).
 * @param perExample the per-example scalars d_i = (ℓ_i(θ+εz) − ℓ_i(θ−εz))/(2ε) of this step's batch.
 */
export function dpZeroScalar(
  perExample: Float64Array,
  clip: number,
  sigma: number,
  expectedBatch: number,
  noise: NoiseSource,
): number {
  checkClipNorm(clip);
  checkSigmaAndBatch(sigma, expectedBatch);
  let sum = 0;
  for (const d of perExample) {
    if (Number.isNaN(d)) throw new InvalidPrivacyParameterError('a per-example scalar is NaN; the step cannot be privatized');
    sum += Math.min(clip, Math.max(-clip, d));
  }
  return sum / expectedBatch + noise(1, (2 * sigma * clip) / expectedBatch)[0]!;
}

function checkSigmaAndBatch(sigma: number, expectedBatch: number): void {
  if (!(sigma >= 0) || sigma === Infinity) {
    throw new InvalidPrivacyParameterError(`noise multiplier σ must be finite and ≥ 0, got ${sigma}`);
  }
  if (!(expectedBatch > 0) || expectedBatch === Infinity) {
    throw new InvalidPrivacyParameterError(`expected batch size must be finite and > 0, got ${expectedBatch}`);
  }
}
