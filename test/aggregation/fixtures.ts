/** Small adapters and client updates for aggregation tests, from seeded randomness. */
import seedrandom from 'seedrandom';
import type { ClientUpdate, RoundContext } from '../../src/aggregation/strategy.js';
import type { HostTensor, TensorMap } from '../../src/tensors/host.js';

export const R = 2;
export const ALPHA = 4;
/** module → [d_out, d_in] */
export const MODULES: Record<string, [number, number]> = { 'h.0.attn.c_attn': [9, 6], 'h.1.mlp.c_fc': [12, 6] };

function random(shape: number[], rng: () => number, scale = 1): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale) };
}

/** A global adapter: random A, B (non-zero so products are non-trivial), and a 2-label head. */
export function globalAdapter(seed = 'global'): Map<string, HostTensor> {
  const rng = seedrandom(seed);
  const g = new Map<string, HostTensor>();
  for (const [m, [dOut, dIn]] of Object.entries(MODULES)) {
    g.set(`${m}.lora_A.weight`, random([R, dIn], rng));
    g.set(`${m}.lora_B.weight`, random([dOut, R], rng, 0.1));
  }
  g.set('score.weight', random([2, 6], rng));
  return g;
}

/** A client update with random deltas for the given names (shapes from `global`). */
export function update(
  global: TensorMap,
  names: readonly string[],
  clientId: string,
  numExamples: number,
  scale = 0.1,
): ClientUpdate {
  const rng = seedrandom(clientId);
  const delta = new Map<string, HostTensor>();
  for (const n of names) delta.set(n, random([...global.get(n)!.shape], rng, scale));
  return { clientId, numExamples, delta, metrics: {} };
}

export function context(global: TensorMap): RoundContext {
  return { round: 1, global, expectedClients: 3 };
}

/** (α/r)·B·A for a module, dense d_out × d_in, in float64 by the textbook loop. */
export function product(adapter: TensorMap, module: string, alpha = ALPHA, r = R): Float64Array {
  const a = adapter.get(`${module}.lora_A.weight`)!;
  const b = adapter.get(`${module}.lora_B.weight`)!;
  const [dOut, k] = b.shape as [number, number];
  const dIn = a.shape[1]!;
  const out = new Float64Array(dOut * dIn);
  for (let i = 0; i < dOut; i++) {
    for (let j = 0; j < dIn; j++) {
      let s = 0;
      for (let l = 0; l < k; l++) s += b.data[i * k + l]! * a.data[l * dIn + j]!;
      out[i * dIn + j] = (alpha / r) * s;
    }
  }
  return out;
}

/** The adapter a client trained: global + delta on the tensors it sent. */
export function trained(global: TensorMap, u: ClientUpdate): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [n, t] of global) {
    const d = u.delta.get(n);
    out.set(n, { shape: t.shape, data: d ? t.data.map((x, i) => x + d.data[i]!) : t.data.slice() });
  }
  return out;
}

/** Σ_k w_k x_k over float64 arrays. */
export function weightedAverage(xs: readonly Float64Array[], ws: readonly number[]): Float64Array {
  const out = new Float64Array(xs[0]!.length);
  xs.forEach((x, k) => x.forEach((v, i) => (out[i]! += ws[k]! * v)));
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}
