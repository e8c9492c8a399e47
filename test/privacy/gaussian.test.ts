import { afterEach, describe, expect, it, vi } from 'vitest';
import { gaussianNoise } from '../../src/privacy/gaussian.js';
import { InvalidPrivacyParameterError } from '../../src/privacy/errors.js';

/**
 * Statistical tests: each is a two-sided z-test at false-failure rate 1e-6 (|z| < 4.892); the five in this file
 * together fail spuriously with probability < 5e-6 per run.
 */
const Z_1E6 = 4.892;
const N = 200_000;
const STD = 2.5;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('gaussian – crypto sampler', () => {
  const x = gaussianNoise(N, STD);

  it('has mean 0', () => {
    const mean = x.reduce((s, v) => s + v, 0) / N;
    expect(Math.abs(mean / (STD / Math.sqrt(N)))).toBeLessThan(Z_1E6);
  });

  it('has variance std²', () => {
    const mean = x.reduce((s, v) => s + v, 0) / N;
    const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / (N - 1);
    // Var(s²) = 2σ⁴/(n−1) for normal data.
    const z = (variance - STD ** 2) / (STD ** 2 * Math.sqrt(2 / (N - 1)));
    expect(Math.abs(z)).toBeLessThan(Z_1E6);
  });

  it.each([
    [2, 0.04550026389635842],
    [3, 0.0026997960632601866],
  ])('puts the right mass beyond %d standard deviations', (k, p) => {
    const count = x.reduce((c, v) => c + (Math.abs(v) > k * STD ? 1 : 0), 0);
    const z = (count - N * p) / Math.sqrt(N * p * (1 - p));
    expect(Math.abs(z)).toBeLessThan(Z_1E6);
  });

  it('draws the two members of each polar pair uncorrelated', () => {
    let sxy = 0;
    for (let i = 0; i + 1 < N; i += 2) sxy += x[i]! * x[i + 1]!;
    const pairs = N / 2;
    const r = sxy / pairs / STD ** 2;
    expect(Math.abs(r * Math.sqrt(pairs))).toBeLessThan(Z_1E6);
  });

  it('never calls Math.random', () => {
    vi.spyOn(Math, 'random').mockImplementation(() => {
      throw new Error('Math.random must not be used for DP noise');
    });
    expect(gaussianNoise(1001, 1)).toHaveLength(1001);
  });

  it('returns zeros for std 0 and rejects bad arguments', () => {
    expect([...gaussianNoise(3, 0)]).toEqual([0, 0, 0]);
    expect(() => gaussianNoise(-1, 1)).toThrow(InvalidPrivacyParameterError);
    expect(() => gaussianNoise(3, Number.NaN)).toThrow(/std/);
  });
});
