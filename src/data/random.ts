/**
 * Seeded randomness for splits and partitions: every draw comes from one seedrandom (ARC4) stream, so a seed
 * string fixes the result on every machine and Node version.
 */
import seedrandom from 'seedrandom';

/** Uniform [0, 1) draws. */
export type Uniform = () => number;

/** A reproducible uniform stream for `seed`. */
export function seededUniform(seed: string): Uniform {
  const prng = seedrandom(seed);
  return () => prng.double(); // 53-bit resolution (plain prng() has 32 bits)
}

/** Uniform integer in [0, n). */
export function randomInt(u: Uniform, n: number): number {
  return Math.floor(u() * n);
}

/** Fisher–Yates shuffle of a copy of `items`. */
export function shuffled<T>(items: readonly T[], u: Uniform): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(u, i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Standard normal draw (Marsaglia polar method). */
export function standardNormal(u: Uniform): number {
  for (;;) {
    const x = 2 * u() - 1;
    const y = 2 * u() - 1;
    const s = x * x + y * y;
    if (s > 0 && s < 1) return x * Math.sqrt((-2 * Math.log(s)) / s);
  }
}

/**
 * log of a Gamma(shape, 1) draw, by Marsaglia & Tsang (2000), "A simple method for generating gamma variables",
 * ACM TOMS 26(3), with their shape < 1 boost G(a) = G(a + 1) · U^(1/a). Returned in log space because for small
 * shapes (Dirichlet alpha = 0.01) U^(1/a) underflows to 0 in floating point.
 */
export function logGammaSample(shape: number, u: Uniform): number {
  if (shape < 1) {
    const boost = Math.log(1 - u()) / shape; // 1 - u() is in (0, 1], so the log is finite
    return logGammaSample(shape + 1, u) + boost;
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = standardNormal(u);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const w = 1 - u(); // in (0, 1]
    if (w < 1 - 0.0331 * x ** 4 || Math.log(w) < 0.5 * x * x + d * (1 - v + Math.log(v))) return Math.log(d * v);
  }
}

/** A Dirichlet(alpha · 1_k) draw: k non-negative proportions summing to 1. */
export function symmetricDirichlet(k: number, alpha: number, u: Uniform): number[] {
  const logs = Array.from({ length: k }, () => logGammaSample(alpha, u));
  const max = Math.max(...logs);
  const weights = logs.map((l) => Math.exp(l - max)); // normalising in log space keeps the largest weight at 1
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}
