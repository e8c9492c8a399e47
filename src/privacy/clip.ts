/**
 * L2 clipping, the step that bounds one contributor's sensitivity to C (McMahan et al. 2018, DP-FedAvg; Abadi et al.
 * 2016, DP-SGD): u ← u · min(1, C/‖u‖), with the norm taken over ALL tensors flattened together (joint clipping: the
 * same guarantee as clipping each tensor to a share of C, with less noise per coordinate).
 *
 * Float32 rounding can leave a scaled vector a few ulps above C; sensitivity is a hard bound, so the scale is nudged
 * down until the float32 result's norm (computed in float64) is ≤ C.
 */
import { type HostTensor, type TensorMap, globalNorm } from '../tensors/host.js';
import { InvalidPrivacyParameterError } from './errors.js';
import type { NoiseSource } from './gaussian.js';

export interface ClipResult {
  /** The clipped copy (the input is never modified). */
  readonly tensors: Map<string, HostTensor>;
  /** ‖u‖ before clipping. */
  readonly norm: number;
  /** True when ‖u‖ > C and the update was scaled down. */
  readonly clipped: boolean;
}

export function checkClipNorm(clipNorm: number): void {
  if (!(clipNorm > 0) || clipNorm === Infinity) {
    throw new InvalidPrivacyParameterError(`clip norm C must be finite and > 0, got ${clipNorm}`);
  }
}

/** Clips the tensors jointly to L2 norm ≤ clipNorm. A non-finite input norm is rejected: it cannot be bounded. */
export function clipTensors(tensors: TensorMap, clipNorm: number): ClipResult {
  checkClipNorm(clipNorm);
  const norm = globalNorm(tensors);
  if (!Number.isFinite(norm)) {
    throw new InvalidPrivacyParameterError('cannot clip an update with non-finite values; reject it instead');
  }
  const sources = [...tensors.values()].map((t) => t.data);
  const clipped = norm > clipNorm;
  const scaled = clipped ? scaleWithin(sources, clipNorm / norm, clipNorm) : sources.map((d) => d.slice());
  const out = new Map<string, HostTensor>();
  [...tensors].forEach(([name, t], k) => out.set(name, { shape: [...t.shape], data: scaled[k]! }));
  return { tensors: out, norm, clipped };
}

/** Clips one flat vector (e.g. one example's gradient) to L2 norm ≤ clipNorm; returns a copy and the original norm. */
export function clipVector(v: Float32Array, clipNorm: number): { vector: Float32Array; norm: number; clipped: boolean } {
  checkClipNorm(clipNorm);
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const norm = Math.sqrt(s);
  if (!Number.isFinite(norm)) throw new InvalidPrivacyParameterError('cannot clip a vector with non-finite values');
  const clipped = norm > clipNorm;
  const vector = clipped ? scaleWithin([v], clipNorm / norm, clipNorm)[0]! : v.slice();
  return { vector, norm, clipped };
}

/**
 * Local DP: clip to C, then add N(0, σ²C²) to every coordinate before the update leaves the client (the coordinator
 * is not trusted). Each call is one Gaussian release with noise multiplier σ, sensitivity C.
 */
export function localDp(tensors: TensorMap, clipNorm: number, noiseMultiplier: number, noise: NoiseSource): ClipResult {
  if (!(noiseMultiplier >= 0) || noiseMultiplier === Infinity) {
    throw new InvalidPrivacyParameterError(`noise multiplier σ must be finite and ≥ 0, got ${noiseMultiplier}`);
  }
  const result = clipTensors(tensors, clipNorm);
  for (const t of result.tensors.values()) {
    const z = noise(t.data.length, noiseMultiplier * clipNorm);
    for (let i = 0; i < z.length; i++) t.data[i] = t.data[i]! + z[i]!;
  }
  return result;
}

/** Copies of `sources` times `scale`, the scale shrunk by a relative 2⁻²⁰ per retry until the float32 norm is ≤ bound. */
function scaleWithin(sources: readonly Float32Array[], scale: number, bound: number): Float32Array[] {
  const out = sources.map((d) => new Float32Array(d.length));
  for (;;) {
    let s = 0;
    out.forEach((dst, k) => {
      const src = sources[k]!;
      for (let i = 0; i < dst.length; i++) {
        dst[i] = src[i]! * scale;
        s += dst[i]! * dst[i]!;
      }
    });
    if (Math.sqrt(s) <= bound) return out;
    scale *= 1 - 2 ** -20; // float32 rounding moves the norm by ≤ 2⁻²⁴ relative, so one retry is all it ever takes
  }
}
