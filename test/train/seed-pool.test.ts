import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import type { GPT2 } from '../../src/model/gpt2.js';
import { trainMezo } from '../../src/train/mezo.js';
import { accumulate, addScalars, candidateSeeds, replay, seedStream } from '../../src/train/seed-pool.js';
import { freshAdapter, syntheticTask, TEST_LORA, tinyModel } from './zo-fixtures.js';

let model: GPT2;
beforeAll(async () => {
  await initBackend('wasm');
  model = tinyModel();
});
afterAll(() => model.dispose());

describe('seed pool – candidates', () => {
  it('candidateSeeds – gives K distinct seeds, identical for the same run seed and different for another', () => {
    const a = candidateSeeds('run-1', 4096);
    expect(a).toHaveLength(4096);
    expect(new Set(a).size).toBe(4096);
    expect(candidateSeeds('run-1', 4096)).toEqual(a);
    expect(candidateSeeds('run-2', 16)).not.toEqual(a.slice(0, 16));
    expect(candidateSeeds('run-1', 16)).toEqual(a.slice(0, 16)); // a smaller pool is a prefix
  });

  it('seedStream – with a pool draws only candidates', () => {
    const pool = candidateSeeds('run', 8);
    const next = seedStream(1, pool);
    const drawn = Array.from({ length: 200 }, next);
    expect(drawn.every((s) => pool.includes(s))).toBe(true);
    expect(new Set(drawn).size).toBe(8);
  });

  it('accumulate – sums g per candidate and rejects a seed outside the pool', () => {
    const pool = candidateSeeds('run', 4);
    const local = accumulate(
      [
        { seed: pool[2]!, g: 0.5 },
        { seed: pool[0]!, g: -1 },
        { seed: pool[2]!, g: 0.25 },
      ],
      pool,
    );
    expect(Array.from(local)).toEqual([-1, 0, 0.75, 0]);
    expect(() => accumulate([{ seed: 1, g: 1 }], candidateSeeds('other', 4))).toThrow(/not one of the 4 candidate seeds/);
  });

  it('addScalars – adds a weighted client vector into the coordinator pool', () => {
    const pool = new Float64Array([1, 2]);
    addScalars(pool, Float32Array.of(2, -4), 0.25);
    expect(Array.from(pool)).toEqual([1.5, 1]);
    expect(() => addScalars(pool, Float32Array.of(1), 1)).toThrow(/expected 2 seed scalars/);
  });
});

describe('seed pool – replay', () => {
  it('replay(start, accumulate(trace)) – equals the locally trained MeZO adapter to 1e-6', async () => {
    // Arrange
    const data = syntheticTask(32, 'pool-task');
    const start = freshAdapter();
    const seeds = candidateSeeds('pool-run', 64); // small K, so some seeds repeat across the 60 steps
    const lr = 3e-3;
    // Act
    const local = await trainMezo(model, TEST_LORA, start, data, {
      steps: 60,
      batchSize: 8,
      lr,
      eps: 1e-3,
      trainable: 'ffa',
      seed: 5,
      seedPool: { runSeed: 'pool-run', k: 64 },
    });
    const scalars = accumulate(local.trace, seeds);
    const replayed = replay(start, 'ffa', scalars, seeds, lr);
    // Assert
    expect(local.trace.every((t) => seeds.includes(t.seed))).toBe(true);
    expect(new Set(local.trace.map((t) => t.seed)).size).toBeLessThan(60);
    let maxDiff = 0;
    let moved = 0;
    for (const [name, t] of local.adapter) {
      const r = replayed.get(name)!.data;
      for (let i = 0; i < r.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(r[i]! - t.data[i]!));
        moved = Math.max(moved, Math.abs(t.data[i]! - start.get(name)!.data[i]!));
      }
    }
    // Differences are float32 rounding only: the local run rounds θ after each step, replay once per value, and
    // the uploaded per-seed sums are float32.
    expect(maxDiff).toBeLessThanOrEqual(1e-6);
    expect(moved).toBeGreaterThan(1e-3);
    expect([...replayed.keys()]).toEqual([...start.keys()]);
  });

  it('replay – with an all-zero pool returns the start adapter', () => {
    const start = freshAdapter();
    const seeds = candidateSeeds('r', 4);
    expect(replay(start, 'lora', new Float32Array(4), seeds, 1)).toEqual(start);
  });
});
