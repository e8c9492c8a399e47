import { describe, expect, it } from 'vitest';
import { logGammaSample, seededUniform, shuffled, symmetricDirichlet } from '../../src/data/random.js';

function moments(xs: readonly number[]): { mean: number; variance: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, variance: xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length };
}

describe('random', () => {
  it('seededUniform – the same seed repeats the stream, another seed does not', () => {
    const a = seededUniform('s1');
    const b = seededUniform('s1');
    const c = seededUniform('s2');

    const [xa, xb, xc] = [a, b, c].map((u) => Array.from({ length: 5 }, u));

    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
  });

  it('shuffled – returns a permutation and leaves the input untouched', () => {
    const input = Array.from({ length: 50 }, (_, i) => i);

    const out = shuffled(input, seededUniform('p'));

    expect([...out].sort((x, y) => x - y)).toEqual(input);
    expect(out).not.toEqual(input);
    expect(input[0]).toBe(0);
  });

  it.each([0.1, 0.5, 1, 3.7])('logGammaSample – Gamma(%d) draws have mean and variance ≈ shape', (shape) => {
    const u = seededUniform(`gamma-${shape}`);

    const xs = Array.from({ length: 20000 }, () => Math.exp(logGammaSample(shape, u)));

    const { mean, variance } = moments(xs);
    expect(mean).toBeGreaterThan(shape * 0.95);
    expect(mean).toBeLessThan(shape * 1.05);
    expect(variance).toBeGreaterThan(shape * 0.85);
    expect(variance).toBeLessThan(shape * 1.15);
  });

  it('logGammaSample – stays finite for tiny shapes where the plain value underflows', () => {
    const u = seededUniform('tiny');

    const logs = Array.from({ length: 1000 }, () => logGammaSample(0.001, u));

    expect(logs.every(Number.isFinite)).toBe(true);
    expect(logs.some((l) => Math.exp(l) === 0)).toBe(true); // would have been 0 without log space
  });

  it('symmetricDirichlet – proportions are non-negative and sum to 1 even for tiny alpha', () => {
    const p = symmetricDirichlet(10, 0.001, seededUniform('dir'));

    expect(p.every((x) => x >= 0)).toBe(true);
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  // Reference: E[max share] of Dir(alpha · 1_10), 20000 draws of numpy.random.default_rng(0).dirichlet.
  it.each([
    [100, 0.116],
    [1, 0.293],
    [0.1, 0.663],
    [0.01, 0.942],
  ])('symmetricDirichlet – the mean largest share at alpha %s matches numpy (%s)', (alpha, reference) => {
    const u = seededUniform(`dir-${alpha}`);

    const maxShares = Array.from({ length: 2000 }, () => Math.max(...symmetricDirichlet(10, alpha, u)));

    expect(Math.abs(moments(maxShares).mean - reference)).toBeLessThan(0.03);
  });
});
