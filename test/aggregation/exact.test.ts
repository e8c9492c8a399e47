import { describe, expect, it } from 'vitest';
import { StrategyConfigError } from '../../src/aggregation/errors.js';
import { ExactStrategy } from '../../src/aggregation/exact.js';
import { travellingTensors } from '../../src/aggregation/updates.js';
import { svd } from '../../src/linalg/svd.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { ALPHA, context, globalAdapter, maxAbsDiff, MODULES, product, R, trained, update, weightedAverage } from './fixtures.js';

const global = globalAdapter();
const names = travellingTensors('exact', global.keys());
const strategy = new ExactStrategy({ alpha: ALPHA, r: R });

function frobenius(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

describe('exact', () => {
  it('exact – reproduces the weighted average of products when its rank is ≤ r', () => {
    // Prepare: clients move only B (ΔA = 0), so Σ w_k B_k A has rank ≤ r
    const clients = [update(global, names, 'e1', 20), update(global, names, 'e2', 60)];
    for (const c of clients) for (const m of Object.keys(MODULES)) c.delta.get(`${m}.lora_A.weight`)!.data.fill(0);
    // Execute
    const out = strategy.aggregate(context(global), clients, [])!;
    // Assert
    for (const m of Object.keys(MODULES)) {
      const expected = weightedAverage(
        clients.map((c) => product(trained(global, c), m)),
        [0.25, 0.75],
      );
      expect(maxAbsDiff(product(out.global, m), expected)).toBeLessThan(1e-5);
    }
    expect(out.metrics['truncation_rel_err']).toBeLessThan(1e-6);
  });

  it('exact – lays the re-factored adapter, factors and head, into the one buffer the round context allocates', () => {
    const clients = [update(global, names, 'e1', 20), update(global, names, 'e2', 60)];
    const given: ArrayBuffer[] = [];
    const allocate = (bytes: number): ArrayBuffer => given[given.push(new ArrayBuffer(bytes)) - 1]!;
    const plain = strategy.aggregate(context(global), clients, [])!;
    const out = strategy.aggregate({ ...context(global), allocate }, clients, [])!;
    expect(given).toHaveLength(1);
    expect([...out.global.values()].every((t) => t.data.buffer === given[0])).toBe(true);
    for (const [name, t] of plain.global) expect([...out.global.get(name)!.data]).toEqual([...t.data]);
  });

  it('exact – otherwise gives the best rank-r approximation: the residual equals the tail singular values', () => {
    // Prepare: 4 clients moving both factors, so the average of products has rank up to 4r (capped by d_in = 6)
    const clients = ['x1', 'x2', 'x3', 'x4'].map((id, k) => update(global, names, id, k + 1, 1));
    const weights = [0.1, 0.2, 0.3, 0.4];
    // Execute
    const out = strategy.aggregate(context(global), clients, [])!;
    // Assert
    for (const [m, [dOut, dIn]] of Object.entries(MODULES)) {
      const target = weightedAverage(
        clients.map((c) => product(trained(global, c), m)),
        weights,
      );
      const residual = frobenius(product(out.global, m).map((x, i) => target[i]! - x));
      const tailNorm = Math.sqrt([...svd(target, dOut, dIn).s].slice(R).reduce((s, x) => s + x * x, 0));
      expect(tailNorm).toBeGreaterThan(0.1); // the case really is above rank r
      expect(Math.abs(residual - tailNorm)).toBeLessThan(1e-5 * frobenius(target));
    }
    expect(out.metrics['truncation_rel_err']).toBeGreaterThan(0);
  });

  it('exact – splits singular values evenly between the factors: B = U√S, A = √S·Vᵀ', () => {
    // Prepare
    const clients = [update(global, names, 'b1', 1), update(global, names, 'b2', 1)];
    // Execute
    const out = strategy.aggregate(context(global), clients, [])!;
    // Assert: column norms of B equal row norms of A (both √s_j)
    const m = 'h.1.mlp.c_fc';
    const [dOut, dIn] = MODULES[m]!;
    const b = out.global.get(`${m}.lora_B.weight`)!.data;
    const a = out.global.get(`${m}.lora_A.weight`)!.data;
    for (let j = 0; j < R; j++) {
      const colB = frobenius(Array.from({ length: dOut }, (_, i) => b[i * R + j]!));
      const rowA = frobenius(a.subarray(j * dIn, (j + 1) * dIn));
      expect(colB).toBeCloseTo(rowA, 5);
    }
  });

  it('exact – keeps directions trainable when the average product is zero: B = 0, A with orthonormal rows', () => {
    // Prepare: global B = 0 and no client moved anything
    const zeroB = new Map<string, HostTensor>(
      [...global].map(([n, t]) => [n, n.endsWith('lora_B.weight') ? { shape: t.shape, data: new Float32Array(t.data.length) } : t]),
    );
    const idle = update(zeroB, names, 'idle', 5, 0);
    // Execute
    const out = strategy.aggregate(context(zeroB), [idle], [])!;
    // Assert
    const a = out.global.get('h.0.attn.c_attn.lora_A.weight')!.data;
    expect(out.global.get('h.0.attn.c_attn.lora_B.weight')!.data.every((x) => x === 0)).toBe(true);
    const dot = (i: number, j: number): number => a.subarray(i * 6, i * 6 + 6).reduce((s, x, l) => s + x * a[j * 6 + l]!, 0);
    expect(dot(0, 0)).toBeCloseTo(1, 6);
    expect(dot(1, 1)).toBeCloseTo(1, 6);
    expect(dot(0, 1)).toBeCloseTo(0, 6);
  });

  it('exact – averages the head linearly', () => {
    const clients = [update(global, names, 'h1', 1), update(global, names, 'h2', 3)];
    const out = strategy.aggregate(context(global), clients, [])!;
    const head = weightedAverage(
      clients.map((c) => Float64Array.from(trained(global, c).get('score.weight')!.data)),
      [0.25, 0.75],
    );
    expect(maxAbsDiff(out.global.get('score.weight')!.data, head)).toBeLessThan(1e-6);
  });

  it('exact – rejects a global adapter whose rank differs from the configured r', () => {
    expect(() => new ExactStrategy({ alpha: ALPHA, r: 3 }).aggregate(context(global), [update(global, names, 'z', 1)], [])).toThrow(
      expect.objectContaining({ name: 'AdapterLayoutError', code: 'rank_mismatch' }),
    );
  });

  it('exact – rejects a lora_A without its lora_B', () => {
    const broken = new Map(global);
    broken.delete('h.1.mlp.c_fc.lora_B.weight');
    const names2 = travellingTensors('exact', broken.keys());
    expect(() => strategy.aggregate(context(broken), [update(broken, names2, 'z', 1)], [])).toThrow(
      expect.objectContaining({ code: 'unpaired_factor' }),
    );
  });

  it('exact – rejects a NaN factor delta naming the client', () => {
    const bad = update(global, names, 'nan', 1);
    bad.delta.get('h.0.attn.c_attn.lora_A.weight')!.data[0] = Number.POSITIVE_INFINITY;
    expect(() => strategy.aggregate(context(global), [bad], [])).toThrow(expect.objectContaining({ code: 'non_finite', clientId: 'nan' }));
  });

  it('exact – rejects a non-positive alpha or a fractional rank at construction', () => {
    expect(() => new ExactStrategy({ alpha: 0, r: 2 })).toThrow(StrategyConfigError);
    expect(() => new ExactStrategy({ alpha: 1, r: 1.5 })).toThrow(StrategyConfigError);
  });
});
