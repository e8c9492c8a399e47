import { describe, expect, it } from 'vitest';
import { DEFAULT_GATE, calibrateGate, gateWeight } from '../../src/unlearning/gate.js';
import { quantile } from '../../src/unlearning/stats.js';

const range = (from: number, to: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + ((to - from) * i) / (n - 1));

describe('unlearning gate', () => {
  it('gate – is low at the generic 99th percentile, high at the forget 5th percentile, exactly 0 far below', () => {
    const outScores = range(-10, -2, 200);
    const inScores = range(1, 6, 100);
    const gate = calibrateGate(inScores, outScores);
    expect(gateWeight(gate, quantile(outScores, 0.99))).toBeCloseTo(DEFAULT_GATE.low, 6);
    expect(gateWeight(gate, quantile(inScores, 0.05))).toBeCloseTo(DEFAULT_GATE.high, 6);
    expect(gateWeight(gate, -10)).toBe(0); // clearly unrelated: exactly zero, so serving skips the adapter
    expect(gateWeight(gate, 6)).toBeGreaterThan(0.999);
  });

  it('gate – keeps generic inputs low when the detector separates poorly, moving only the high anchor', () => {
    const outScores = range(-3, 1, 101); // median −1, 99th percentile 0.96
    const inScores = range(-1, 3, 100);
    const gate = calibrateGate(inScores, outScores);
    const zOut = quantile(outScores, 0.99);
    expect(gateWeight(gate, zOut)).toBeCloseTo(DEFAULT_GATE.low, 6);
    expect(gateWeight(gate, zOut + (zOut - quantile(outScores, 0.5)))).toBeCloseTo(DEFAULT_GATE.high, 6);
  });

  it('gate – is 1 for a forget sample itself (bank match), whatever its detector score', () => {
    const gate = calibrateGate(range(1, 6, 100), range(-10, -2, 200));
    expect(gateWeight(gate, -10, 1)).toBe(1);
    expect(gateWeight(gate, -10, DEFAULT_GATE.memberCos - 0.01)).toBe(0);
  });

  it('gate – rejects a cutoff at or above the low anchor', () => {
    expect(() => calibrateGate([1, 2], [-2, -1], { ...DEFAULT_GATE, cutoff: 0.5 })).toThrow(/cutoff/);
  });
});
