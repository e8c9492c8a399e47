/**
 * Seeded initialisers. Reproducible across processes and backends because values are generated in JS from
 * seedrandom's Alea generator (fast; exact float64 arithmetic) and only then uploaded as tensors. Box–Muller's
 * Math.log/cos/sin come from V8's fdlibm port, so values are bit-identical across Node processes and platforms.
 * Every tensor gets its own stream, seeded by `${seed}:${name}`, so one tensor's values do not depend on which other
 * tensors exist or the order they are created in.
 */
import seedrandom from 'seedrandom';

function stream(seed: string, name: string): () => number {
  return seedrandom.alea(`${seed}:${name}`);
}

/** n values ~ N(0, std²) by Box–Muller (both outputs used). */
export function seededNormal(n: number, std: number, seed: string, name: string): Float32Array {
  const rng = stream(seed, name);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = 1 - rng(); // (0, 1]: log stays finite
    const u2 = rng();
    const radius = std * Math.sqrt(-2 * Math.log(u1));
    out[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/** n values ~ U(−bound, bound). */
export function seededUniform(n: number, bound: number, seed: string, name: string): Float32Array {
  const rng = stream(seed, name);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng() - 1) * bound;
  return out;
}
