import { describe, expect, it } from 'vitest';
import { UpdateRejectedError } from '../../src/aggregation/errors.js';
import { FedAvgStrategy, FfaStrategy } from '../../src/aggregation/linear.js';
import { travellingTensors } from '../../src/aggregation/updates.js';
import { context, globalAdapter, maxAbsDiff, MODULES, product, trained, update, weightedAverage } from './fixtures.js';

const global = globalAdapter();
const ffaNames = travellingTensors('ffa', global.keys());

describe('ffa', () => {
  it('ffa – the aggregate product (α/r)·B·A equals the example-weighted average of the client products', () => {
    // Prepare
    const clients = [update(global, ffaNames, 'c1', 10), update(global, ffaNames, 'c2', 30), update(global, ffaNames, 'c3', 60)];
    const weights = [0.1, 0.3, 0.6];
    // Execute
    const out = new FfaStrategy().aggregate(context(global), clients, [])!;
    // Assert
    for (const m of Object.keys(MODULES)) {
      const expected = weightedAverage(
        clients.map((c) => product(trained(global, c), m)),
        weights,
      );
      expect(maxAbsDiff(product(out.global, m), expected)).toBeLessThan(1e-5);
      expect(out.global.get(`${m}.lora_A.weight`)!.data).toEqual(global.get(`${m}.lora_A.weight`)!.data);
    }
    const head = weightedAverage(
      clients.map((c) => Float64Array.from(trained(global, c).get('score.weight')!.data)),
      weights,
    );
    expect(maxAbsDiff(out.global.get('score.weight')!.data, head)).toBeLessThan(1e-6);
    expect(out.metrics['clients']).toBe(3);
  });

  it('ffa – lays the new global adapter into the memory the round context allocates (the coordinator\'s faulted-in buffer)', () => {
    const clients = [update(global, ffaNames, 'c1', 10), update(global, ffaNames, 'c2', 30)];
    const buffers: ArrayBuffer[] = [];
    const allocate = (bytes: number): ArrayBuffer => buffers[buffers.push(new ArrayBuffer(bytes)) - 1]!;
    const out = new FfaStrategy().aggregate({ ...context(global), allocate }, clients, [])!;
    expect(buffers).toHaveLength(1);
    expect([...out.global.values()].every((t) => t.data.buffer === buffers[0])).toBe(true);
    expect(out.global.get('h.0.attn.c_attn.lora_A.weight')!.data).toEqual(global.get('h.0.attn.c_attn.lora_A.weight')!.data);
  });

  it('ffa – equal weighting ignores example counts', () => {
    // Prepare
    const clients = [update(global, ffaNames, 'c1', 1), update(global, ffaNames, 'c2', 99)];
    // Execute
    const out = new FfaStrategy({ weighting: 'equal' }).aggregate(context(global), clients, [])!;
    // Assert
    const m = 'h.0.attn.c_attn';
    const expected = weightedAverage(
      clients.map((c) => product(trained(global, c), m)),
      [0.5, 0.5],
    );
    expect(maxAbsDiff(product(out.global, m), expected)).toBeLessThan(1e-5);
  });

  it('ffa – keeps the old global (undefined) with no results or fewer than minClients', () => {
    const strategy = new FfaStrategy({ minClients: 2 });
    expect(strategy.aggregate(context(global), [], [])).toBeUndefined();
    expect(strategy.aggregate(context(global), [update(global, ffaNames, 'c1', 1)], [{ clientId: 'c2', reason: 'timeout' }])).toBeUndefined();
  });

  it('ffa – rejects an update carrying a frozen lora_A tensor', () => {
    const bad = update(global, [...ffaNames, 'h.0.attn.c_attn.lora_A.weight'], 'sneaky', 1);
    expect(() => new FfaStrategy().aggregate(context(global), [bad], [])).toThrow(
      expect.objectContaining({ name: 'UpdateRejectedError', code: 'frozen_tensor', clientId: 'sneaky', tensor: 'h.0.attn.c_attn.lora_A.weight' }),
    );
  });

  it('ffa – rejects missing, unknown and wrongly shaped tensors by name', () => {
    // Prepare
    const ok = update(global, ffaNames, 'ok', 1);
    const missing = update(global, ffaNames.slice(1), 'missing', 1);
    const unknown = { ...ok, clientId: 'unknown', delta: new Map([...ok.delta, ['h.9.x.weight', { shape: [1], data: new Float32Array(1) }]]) };
    const misshaped = { ...ok, clientId: 'misshaped', delta: new Map([...ok.delta, ['score.weight', { shape: [6, 2], data: new Float32Array(12) }]]) };
    const strategy = new FfaStrategy();
    // Execute / Assert
    expect(() => strategy.aggregate(context(global), [ok, missing], [])).toThrow(expect.objectContaining({ code: 'missing_tensor', clientId: 'missing' }));
    expect(() => strategy.aggregate(context(global), [unknown], [])).toThrow(expect.objectContaining({ code: 'unexpected_tensor' }));
    expect(() => strategy.aggregate(context(global), [misshaped], [])).toThrow(expect.objectContaining({ code: 'shape_mismatch', tensor: 'score.weight' }));
  });

  it('ffa – rejects a NaN delta naming the client that sent it', () => {
    // Prepare
    const bad = update(global, ffaNames, 'nan-client', 1);
    bad.delta.get('h.1.mlp.c_fc.lora_B.weight')!.data[3] = Number.NaN;
    // Execute / Assert
    expect(() => new FfaStrategy().aggregate(context(global), [update(global, ffaNames, 'fine', 1), bad], [])).toThrow(
      expect.objectContaining({ code: 'non_finite', clientId: 'nan-client', tensor: 'h.1.mlp.c_fc.lora_B.weight' }),
    );
    expect(() => new FfaStrategy().aggregate(context(global), [bad], [])).toThrow(UpdateRejectedError);
  });
});

describe('fedavg', () => {
  const names = travellingTensors('fedavg', global.keys());

  it('fedavg – averages A and B separately, which is NOT the average of the products', () => {
    // Prepare: large, different A and B moves so the cross terms B_j·A_k matter
    const clients = [update(global, names, 'f1', 1, 1), update(global, names, 'f2', 1, 1)];
    // Execute
    const out = new FedAvgStrategy().aggregate(context(global), clients, [])!;
    // Assert: each factor is the plain average…
    for (const n of names) {
      const expected = weightedAverage(
        clients.map((c) => Float64Array.from(trained(global, c).get(n)!.data)),
        [0.5, 0.5],
      );
      expect(maxAbsDiff(out.global.get(n)!.data, expected)).toBeLessThan(1e-6);
    }
    // …but the product differs from the average product by mean(B)·mean(A) − mean(B·A) = −¼(B₁−B₂)(A₁−A₂)
    const m = 'h.0.attn.c_attn';
    const averageProduct = weightedAverage(
      clients.map((c) => product(trained(global, c), m)),
      [0.5, 0.5],
    );
    expect(maxAbsDiff(product(out.global, m), averageProduct)).toBeGreaterThan(0.05);
  });

  it('fedavg – lets lora_A travel, unlike ffa', () => {
    expect(names.filter((n) => n.includes('lora_A'))).toHaveLength(2);
    expect(ffaNames.filter((n) => n.includes('lora_A'))).toHaveLength(0);
  });
});
