import { describe, expect, it } from 'vitest';
import { PoissonBatches, ShuffledBatches, gatherBatch, seededUniform } from '../../src/train/batches.js';
import { trainableNames } from '../../src/train/types.js';

describe('batch samplers', () => {
  it('shuffled batches – visit every row once per epoch, in a seed-determined order', () => {
    const rows = Array.from({ length: 10 }, (_, i) => i * 3);
    const draw = (seed: number): number[] => {
      const s = new ShuffledBatches(rows, 5, seed);
      return [...s.next(), ...s.next()];
    };
    const epoch = draw(1);
    expect([...epoch].sort((a, b) => a - b)).toEqual(rows);
    expect(draw(1)).toEqual(epoch);
    expect(draw(2)).not.toEqual(epoch);
  });

  it('shuffled batches – keep a fixed size across epoch boundaries and cap it at the row count', () => {
    const s = new ShuffledBatches([0, 1, 2], 2, 0);
    expect([s.next().length, s.next().length, s.next().length]).toEqual([2, 2, 2]);
    expect(new ShuffledBatches([0, 1, 2], 10, 0).next()).toHaveLength(3);
  });

  it('poisson batches – include each row independently with mean size q·N', () => {
    const rows = Array.from({ length: 1000 }, (_, i) => i);
    const s = new PoissonBatches(rows, 0.05, seededUniform(3));
    const sizes = Array.from({ length: 400 }, () => s.next().length);
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    expect(s.expectedSize).toBe(50);
    expect(Math.abs(mean - 50)).toBeLessThan(1.5); // std of the mean ≈ 0.34
    const variance = sizes.reduce((a, b) => a + (b - mean) ** 2, 0) / (sizes.length - 1);
    expect(variance).toBeGreaterThan(47.5 * 0.7); // binomial variance N·q·(1−q) = 47.5
    expect(variance).toBeLessThan(47.5 * 1.3);
  });

  it('gatherBatch – copies the chosen rows, masks and labels', () => {
    const data = { n: 3, seqLen: 2, ids: Int32Array.from([1, 2, 3, 4, 5, 6]), mask: Float32Array.from([1, 0, 1, 1, 1, 0]), labels: Int32Array.from([0, 1, 0]) };
    const b = gatherBatch(data, [2, 0]);
    expect([...b.ids]).toEqual([5, 6, 1, 2]);
    expect([...b.mask]).toEqual([1, 0, 1, 0]);
    expect([...b.labels]).toEqual([0, 0]);
    expect(() => gatherBatch(data, [3])).toThrow(/outside/);
  });

  it('trainableNames – ffa drops exactly the lora_A tensors, lora keeps all', () => {
    const names = ['h.0.attn.c_attn.lora_A.weight', 'h.0.attn.c_attn.lora_B.weight', 'score.weight'];
    expect(trainableNames(names, 'ffa')).toEqual(['h.0.attn.c_attn.lora_B.weight', 'score.weight']);
    expect(trainableNames(names, 'lora')).toEqual(names);
  });
});
