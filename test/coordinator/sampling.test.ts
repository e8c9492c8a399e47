import { describe, expect, it } from 'vitest';
import seedrandom from 'seedrandom';
import { assignMode, expectedParticipants, sampleClients } from '../../src/coordinator/sampling.js';

const population = Array.from({ length: 1000 }, (_, i) => ({ id: `c${i}` }));

describe('client sampling', () => {
  it('sampling – Poisson keeps each client with probability q', () => {
    const rand = seedrandom('poisson');
    let total = 0;
    for (let r = 0; r < 50; r++) total += sampleClients(population, { kind: 'poisson', q: 0.1 }, rand).length;
    // 50 rounds × 1000 clients × 0.1 = 5000 expected; sd ≈ 67, so ±400 fails only on a broken sampler.
    expect(Math.abs(total - 5000)).toBeLessThan(400);
  });

  it('sampling – count picks that many distinct clients, all when fewer exist', () => {
    const picked = sampleClients(population, { kind: 'count', count: 10 }, seedrandom('count'));
    expect(new Set(picked.map((c) => c.id)).size).toBe(10);
    expect(sampleClients(population.slice(0, 3), { kind: 'count', count: 10 }, seedrandom('x'))).toHaveLength(3);
  });

  it('sampling – the same seed gives the same sample (a restarted coordinator re-derives it)', () => {
    const a = sampleClients(population, { kind: 'count', count: 20 }, seedrandom('run/3'));
    const b = sampleClients(population, { kind: 'count', count: 20 }, seedrandom('run/3'));
    expect(a).toEqual(b);
  });

  it('sampling – expected participants is q × population, the fixed DP denominator', () => {
    expect(expectedParticipants(500, { kind: 'poisson', q: 0.02 })).toBeCloseTo(10);
    expect(expectedParticipants(5, { kind: 'count', count: 8 })).toBe(5);
  });

  it('mode assignment – low-memory clients get the forward-only mode the policy names', () => {
    const policy = { default: 'backprop', lowMemory: 'mezo', lowMemoryBelowMb: 1024 } as const;
    expect(assignMode({ id: 'a', memoryMb: 512, modes: ['backprop', 'mezo'] }, 'backprop', policy)).toBe('mezo');
    expect(assignMode({ id: 'b', memoryMb: 4096, modes: ['backprop', 'mezo'] }, 'backprop', policy)).toBe('backprop');
    expect(assignMode({ id: 'c', memoryMb: 4096, modes: ['essa'] }, 'backprop', policy)).toBe('essa');
    expect(assignMode({ id: 'd', memoryMb: 0, modes: [] }, 'mezo', undefined)).toBe('mezo');
  });
});
