import { describe, expect, it } from 'vitest';
import type { HostTensor, TensorMap } from '../../src/tensors/host.js';
import { DEFAULT_ESSA, essaAdapter, essaInit, memberValues } from '../../src/train/essa.js';
import { essaBasisFromTensors, essaBasisShapes, essaBasisTensors, essaStep, memberAdapter } from '../../src/train/essa-basis.js';
import { normals } from '../../src/train/perturb.js';
import { freshAdapter } from './zo-fixtures.js';

/** Fresh adapter with random B (std 0.05), so every ΔW has r non-zero singular values. */
function randomBAdapter(): Map<string, HostTensor> {
  const a = freshAdapter();
  for (const [name, t] of a) if (name.endsWith('lora_B.weight')) t.data.set(normals(name.length, t.data.length).map((x) => 0.05 * x));
  return a;
}

function maxAbsDiff(a: TensorMap, b: TensorMap): number {
  let m = 0;
  for (const [name, t] of a) {
    const u = b.get(name)!.data;
    for (let i = 0; i < t.data.length; i++) m = Math.max(m, Math.abs(t.data[i]! - u[i]!));
  }
  return m;
}

describe('essa basis', () => {
  it('memberAdapter – equals essa.ts\'s member s ± σε when the global adapter is the ESSA state\'s own', () => {
    // Arrange
    const state = essaInit(randomBAdapter());
    const global = essaAdapter(state, randomBAdapter());

    // Act
    const plus = memberAdapter(state, global, 1234, 1, 0.02);
    const minus = memberAdapter(state, global, 1234, -1, 0.02);

    // Assert
    expect(maxAbsDiff(plus, essaAdapter(state, global, memberValues(state, 1234, 1, 0.02)))).toBeLessThan(1e-6);
    expect(maxAbsDiff(minus, essaAdapter(state, global, memberValues(state, 1234, -1, 0.02)))).toBeLessThan(1e-6);
    expect(maxAbsDiff(plus, global)).toBeGreaterThan(1e-4);
    expect(plus.get('score.weight')).toBe(global.get('score.weight')); // only lora_B moves
  });

  it('essaBasisTensors – round-trips and has exactly the shapes the adapter layout implies', () => {
    // Arrange
    const adapter = randomBAdapter();
    const state = essaInit(adapter);

    // Act
    const tensors = essaBasisTensors(state);
    const back = essaBasisFromTensors(tensors);
    const shapes = essaBasisShapes(new Map([...adapter].map(([n, t]) => [n, t.shape])), DEFAULT_ESSA.topFraction);

    // Assert
    expect(new Map([...tensors].map(([n, t]) => [n, t.shape]))).toEqual(shapes);
    expect([...tensors.keys()]).toEqual([...shapes.keys()]); // payload order
    expect(back.active).toEqual(state.active);
    expect(back.factors).toEqual(state.factors);
  });

  it('essaStep – its lora_B delta takes the ESSA adapter at s to the one at s\' (the pure-ESSA round)', () => {
    // Arrange
    const state = essaInit(randomBAdapter());
    const global = essaAdapter(state, randomBAdapter());
    const records = [11, 12, 13, 14].map((seed, i) => ({ seed, fPlus: -0.5 + 0.01 * i, fMinus: -0.5 - 0.02 * i }));

    // Act
    const { state: next, delta } = essaStep(state, global, records, DEFAULT_ESSA);

    // Assert
    const moved = new Map(global);
    for (const [name, d] of delta) moved.set(name, { shape: d.shape, data: global.get(name)!.data.map((v, i) => v + d.data[i]!) });
    expect(next.t).toBe(1);
    expect(maxAbsDiff(moved, essaAdapter(next, global))).toBeLessThan(1e-6);
    expect(maxAbsDiff(moved, global)).toBeGreaterThan(1e-5);
  });
});
