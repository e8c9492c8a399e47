import { describe, expect, it } from 'vitest';
import type { NoiseSource } from '../../src/privacy/gaussian.js';
import { gaussianNoise } from '../../src/privacy/gaussian.js';
import { dpZeroScalar, privatizeGradients } from '../../src/privacy/sample-level.js';

const noNoise: NoiseSource = (n) => new Float64Array(n);

function recordingNoise(stds: number[]): NoiseSource {
  return (n, std) => {
    stds.push(std);
    return new Float64Array(n).fill(std);
  };
}

describe('sample-level – DP-SGD gradients', () => {
  it('clips each example, sums, and divides by the expected batch size (not the actual one)', () => {
    // Prepare: norms 10 and 0.5 with C = 1.
    const grads = [Float32Array.of(6, 8), Float32Array.of(0.3, 0.4)];
    // Execute
    const g = privatizeGradients(grads, 1, 1.2, 4, noNoise);
    // Assert: (0.6 + 0.3, 0.8 + 0.4) / 4.
    expect(g[0]).toBeCloseTo(0.225, 6);
    expect(g[1]).toBeCloseTo(0.3, 6);
  });

  it('adds N(0, σ²C²) before dividing by B', () => {
    const stds: number[] = [];
    const g = privatizeGradients([Float32Array.of(0, 0)], 2, 1.5, 10, recordingNoise(stds));
    expect(stds).toEqual([3]);
    expect([...g]).toEqual([0.3, 0.3].map(Math.fround));
  });

  it('still releases noise for an empty Poisson batch when given the dimension', () => {
    const g = privatizeGradients([], 1, 1, 8, recordingNoise([]), 3);
    expect([...g]).toEqual([0.125, 0.125, 0.125]);
    expect(() => privatizeGradients([], 1, 1, 8, noNoise)).toThrow(/batch is empty/);
  });

  it('rejects examples of different lengths', () => {
    expect(() => privatizeGradients([new Float32Array(2), new Float32Array(3)], 1, 1, 2, noNoise)).toThrow(/expected 2/);
  });
});

describe('sample-level – DPZero scalar', () => {
  it('clamps each scalar to [−C, C] and averages over the expected batch', () => {
    const g = dpZeroScalar(Float64Array.of(5, -7, 0.5, -0.25), 1, 1, 8, noNoise);
    expect(g).toBeCloseTo((1 - 1 + 0.5 - 0.25) / 8, 12);
  });

  it('uses noise std 2σC/B (replace-one sensitivity 2C/B)', () => {
    const stds: number[] = [];
    dpZeroScalar(Float64Array.of(0), 0.5, 3, 6, recordingNoise(stds));
    expect(stds[0]).toBeCloseTo((2 * 3 * 0.5) / 6, 12);
  });

  it('has the stated noise std with the crypto sampler (z-test at 1e-6)', () => {
    // Prepare
    const trials = 20_000;
    const std = (2 * 1.1 * 0.8) / 16;
    let s2 = 0;
    // Execute
    for (let t = 0; t < trials; t++) s2 += dpZeroScalar(Float64Array.of(0), 0.8, 1.1, 16, gaussianNoise) ** 2;
    // Assert: Σx²/σ² ~ χ²(trials), mean trials, variance 2·trials.
    expect(Math.abs((s2 / std ** 2 - trials) / Math.sqrt(2 * trials))).toBeLessThan(4.892);
  });

  it('rejects NaN scalars', () => {
    expect(() => dpZeroScalar(Float64Array.of(Number.NaN), 1, 1, 1, noNoise)).toThrow(/NaN/);
  });
});
