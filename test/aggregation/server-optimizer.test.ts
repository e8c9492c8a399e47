import { describe, expect, it } from 'vitest';
import { OptimizerStateError, StrategyConfigError } from '../../src/aggregation/errors.js';
import { FfaStrategy } from '../../src/aggregation/linear.js';
import { ServerOptimizer, withServerOptimizer } from '../../src/aggregation/server-optimizer.js';
import { travellingTensors } from '../../src/aggregation/updates.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { context, globalAdapter, maxAbsDiff, update } from './fixtures.js';

const x0 = new Map<string, HostTensor>([['w', { shape: [2], data: Float32Array.of(1, 2) }]]);
const delta = (a: number, b: number): Map<string, HostTensor> => new Map([['w', { shape: [2], data: Float32Array.of(a, b) }]]);

/** Two steps from x = (1, 2) with Δ1 = (0.1, −0.2), Δ2 = (0.001, 0.3) and the defaults η 1e-2, β 0.9/0.99, τ 1e-3. */
function twoSteps(opt: ServerOptimizer): [Float32Array, Float32Array] {
  const x1 = opt.step(x0, delta(0.1, -0.2));
  const x2 = opt.step(x1, delta(0.001, 0.3));
  return [x1.get('w')!.data, x2.get('w')!.data];
}

describe('server optimizer', () => {
  it('fedadam – matches hand-computed values for one and two steps', () => {
    // Step 1, first coordinate: m = 0.1·0.1 = 0.01; v = 0.99·τ² + 0.01·0.1² = 1.0099e-4;
    // x = 1 + 0.01·0.01 / (√1.0099e-4 + 1e-3) = 1.00905028
    const [x1, x2] = twoSteps(new ServerOptimizer({ kind: 'fedadam' }));
    expect(x1[0]).toBeCloseTo(1.009050283, 6);
    expect(x1[1]).toBeCloseTo(1.990487395, 6);
    expect(x2[0]).toBeCloseTo(1.017323383, 6);
    expect(x2[1]).toBeCloseTo(1.993729446, 6);
  });

  it('fedyogi – matches hand-computed values and departs from Adam once v exceeds Δ²', () => {
    // Step 1: v0 = τ² < Δ², so v = τ² + 0.01·Δ² = 1.01e-4 (coordinate 1). Step 2: v1 > Δ2² = 1e-6, so
    // v = 1.01e-4 − 0.01·1e-6 = 1.0099e-4 (Adam would shrink it to 9.999e-5).
    const [x1, x2] = twoSteps(new ServerOptimizer({ kind: 'fedyogi' }));
    expect(x1[0]).toBeCloseTo(1.009049876, 6);
    expect(x1[1]).toBeCloseTo(1.990487508, 6);
    expect(x2[0]).toBeCloseTo(1.017285633, 6);
    expect(x2[1]).toBeCloseTo(1.993724681, 6);
  });

  it('fedavg – steps η times the pseudo-gradient', () => {
    const x1 = new ServerOptimizer({ kind: 'fedavg', lr: 0.5 }).step(x0, delta(0.2, -0.4));
    expect([...x1.get('w')!.data]).toEqual([Math.fround(1.1), Math.fround(1.8)]);
  });

  it('server optimizer – state round-trips through JSON and continues identically', () => {
    // Prepare
    const original = new ServerOptimizer({ kind: 'fedadam' });
    const x1 = original.step(x0, delta(0.1, -0.2));
    const restored = new ServerOptimizer({ kind: 'fedadam' });
    // Execute
    restored.load(JSON.parse(JSON.stringify(original)));
    // Assert
    expect(restored.stepCount).toBe(1);
    expect(restored.step(x1, delta(0.3, 0.1)).get('w')!.data).toEqual(original.step(x1, delta(0.3, 0.1)).get('w')!.data);
  });

  it('server optimizer – refuses state saved by another optimizer kind', () => {
    const yogi = new ServerOptimizer({ kind: 'fedyogi' });
    yogi.step(x0, delta(1, 1));
    expect(() => new ServerOptimizer({ kind: 'fedadam' }).load(yogi.toJSON())).toThrow(
      expect.objectContaining({ name: 'OptimizerStateError', code: 'wrong_optimizer' }),
    );
  });

  it('server optimizer – refuses malformed state and keeps its own', () => {
    // Prepare
    const opt = new ServerOptimizer({ kind: 'fedadam' });
    opt.step(x0, delta(1, 1));
    const saved = opt.toJSON();
    const truncated = { ...saved, tensors: [{ ...saved.tensors[0]!, shape: [3] }] };
    // Execute / Assert
    expect(() => opt.load(truncated)).toThrow(OptimizerStateError);
    expect(() => opt.load('nonsense')).toThrow(expect.objectContaining({ code: 'bad_state' }));
    expect(opt.stepCount).toBe(1);
  });

  it('server optimizer – rejects invalid hyperparameters', () => {
    expect(() => new ServerOptimizer({ kind: 'fedadam', beta1: 1 })).toThrow(StrategyConfigError);
    expect(() => new ServerOptimizer({ kind: 'fedyogi', tau: 0 })).toThrow(StrategyConfigError);
    expect(() => new ServerOptimizer({ kind: 'fedavg', lr: -1 })).toThrow(StrategyConfigError);
    expect(() => new ServerOptimizer({ kind: 'sgd' as 'fedavg' })).toThrow(/unknown server optimizer/);
  });
});

describe('withServerOptimizer', () => {
  const global = globalAdapter();
  const names = travellingTensors('ffa', global.keys());
  const clients = [update(global, names, 's1', 1), update(global, names, 's2', 2)];

  it('withServerOptimizer – fedavg at η = 1 gives exactly the inner strategy result', () => {
    const plain = new FfaStrategy().aggregate(context(global), clients, [])!;
    const wrapped = withServerOptimizer(new FfaStrategy(), { kind: 'fedavg' }).aggregate(context(global), clients, [])!;
    for (const [n, t] of plain.global) expect(maxAbsDiff(wrapped.global.get(n)!.data, t.data)).toBeLessThan(1e-6);
  });

  it('withServerOptimizer – fedadam steps every moved tensor and keeps no state for the frozen lora_A', () => {
    // Prepare
    const strategy = withServerOptimizer(new FfaStrategy(), { kind: 'fedadam' });
    // Execute
    const out = strategy.aggregate(context(global), clients, [])!;
    // Assert
    const stateNames = strategy.optimizer.toJSON().tensors.map((t) => t.name);
    expect(stateNames).toEqual(names);
    expect(out.global.get('h.0.attn.c_attn.lora_A.weight')!.data).toEqual(global.get('h.0.attn.c_attn.lora_A.weight')!.data);
    expect(out.metrics['server_step_norm']).toBeGreaterThan(0);
    expect(strategy.name).toBe('ffa+fedadam');
  });

  it('withServerOptimizer – steps in the memory the round context allocates, as it would in fresh memory, and leaves the old global alone', () => {
    for (const kind of ['fedavg', 'fedadam', 'fedyogi'] as const) {
      // Prepare: the same optimizer twice, one stepping into the allocated buffer (through the strategy) and one not.
      const options = { kind, lr: kind === 'fedavg' ? 0.5 : 0.01 };
      const before = [...global.values()].map((t) => [...t.data]);
      const given: ArrayBuffer[] = [];
      const allocate = (bytes: number): ArrayBuffer => given[given.push(new ArrayBuffer(bytes)) - 1]!;
      const proposal = new FfaStrategy().aggregate(context(global), clients, [])!.global;
      const fresh = new ServerOptimizer(options).step(global, new Map([...proposal].map(([n, t]) => [n, { shape: t.shape, data: t.data.map((v, i) => v - global.get(n)!.data[i]!) }])));
      // Execute
      const out = withServerOptimizer(new FfaStrategy(), options).aggregate({ ...context(global), allocate }, clients, [])!;
      // Assert
      expect(given).toHaveLength(1);
      expect([...out.global.values()].every((t) => t.data.buffer === given[0])).toBe(true);
      for (const [n, t] of fresh) expect(maxAbsDiff(out.global.get(n)!.data, t.data)).toBeLessThan(1e-6);
      expect([...global.values()].map((t) => [...t.data])).toEqual(before);
    }
  });

  it('withServerOptimizer – keeps the old global (and its state) when the inner strategy does', () => {
    const strategy = withServerOptimizer(new FfaStrategy({ minClients: 5 }), { kind: 'fedyogi' });
    expect(strategy.aggregate(context(global), clients, [])).toBeUndefined();
    expect(strategy.optimizer.stepCount).toBe(0);
  });
});
