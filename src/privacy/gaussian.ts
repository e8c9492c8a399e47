/**
 * Gaussian noise for differential privacy, from node:crypto only: never Math.random, never a seeded generator (a
 * seed is a key that would let anyone subtract the noise).
 *
 * Uniforms take 53 random bits each (the full double mantissa), and normal pairs come from the Marsaglia polar
 * method, which needs no trigonometry and rejects ≈ 21% of candidate pairs.
 *
 * Known pitfall (Mironov 2012, "On Significance of the Least Significant Bits for Differential Privacy", CCS): a
 * floating-point sampler's output has gaps and a distribution of low-order bits that depend on the value it was
 * added to, and an attacker who sees the exact double can sometimes tell neighbouring inputs apart. Lethe releases
 * float32 sums of many noisy coordinates, which blurs but does not provably remove this; when a formal guarantee is
 * needed, replace this sampler with a discrete Gaussian on a fine lattice (Canonne, Kamath, Steinke 2020) and snap the
 * aggregate to that lattice. The `NoiseSource` seam below is where it would plug in.
 */
import { randomFillSync } from 'node:crypto';
import { InvalidPrivacyParameterError } from './errors.js';

/** n independent draws from N(0, std²). Injectable so the math around it stays testable; production uses gaussianNoise. */
export type NoiseSource = (n: number, std: number) => Float64Array;

/** Random words fetched per refill: 64 KiB, so a million-coordinate draw makes ~100 system calls, not a million. */
const WORDS_PER_REFILL = 16_384;
const TWO_POW_26 = 67_108_864;
const TWO_POW_53 = 9_007_199_254_740_992;

/** Draws n values from N(0, std²) with node:crypto randomness. std = 0 gives zeros. */
export const gaussianNoise: NoiseSource = (n, std) => {
  if (!Number.isInteger(n) || n < 0) throw new InvalidPrivacyParameterError(`noise length must be a non-negative integer, got ${n}`);
  if (!(std >= 0) || std === Infinity) throw new InvalidPrivacyParameterError(`noise std must be finite and ≥ 0, got ${std}`);
  const out = new Float64Array(n);
  if (std === 0 || n === 0) return out;
  const uniform = cryptoUniforms(n);
  for (let i = 0; i < n; i += 2) {
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * uniform() - 1;
      v = 2 * uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = std * Math.sqrt((-2 * Math.log(s)) / s);
    out[i] = u * f;
    if (i + 1 < n) out[i + 1] = v * f;
  }
  return out;
};

/**
 * A generator of uniforms on [0, 1) with 53-bit resolution: 27 + 26 bits from two random 32-bit words. The buffer is
 * sized for n normals (2 words per uniform, 4/π ≈ 1.27 candidate pairs per accepted pair), capped at 64 KiB.
 */
function cryptoUniforms(n: number): () => number {
  const size = Math.min(WORDS_PER_REFILL, 2 * Math.ceil(1.3 * n + 8));
  const words = new Uint32Array(size);
  let next = size;
  return () => {
    if (next + 2 > size) {
      randomFillSync(words);
      next = 0;
    }
    const a = words[next++]! >>> 5;
    const b = words[next++]! >>> 6;
    return (a * TWO_POW_26 + b) / TWO_POW_53;
  };
}
