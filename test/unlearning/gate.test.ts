import { describe, expect, it } from 'vitest';
import { DEFAULT_GATE, calibrateGate, gateWeight } from '../../src/unlearning/gate.js';
import { quantile } from '../../src/unlearning/stats.js';

const range = (from: number, to: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + ((to - from) * i) / (n - 1));
/** A calibration set whose every member lies inside the support (distance 1). */
const near = (scores: number[]) => ({ scores, distances: scores.map(() => 1) });

describe('unlearning gate', () => {
  it('gate – is low at the generic 99th percentile, high at the forget 5th percentile, exactly 0 far below', () => {
    const outScores = range(-10, -2, 200);
    const inScores = range(1, 6, 100);
    const gate = calibrateGate(near(inScores), near(outScores));
    expect(gateWeight({ ...gate, cutoff: 0 }, quantile(outScores, 0.99))).toBeCloseTo(DEFAULT_GATE.low, 6);
    expect(gateWeight(gate, quantile(outScores, 0.99))).toBe(0); // below the cutoff
    expect(gateWeight(gate, quantile(inScores, 0.05))).toBeCloseTo(DEFAULT_GATE.high, 6);
    expect(gateWeight(gate, -10)).toBe(0); // clearly unrelated: exactly zero, so serving skips the adapter
    expect(gateWeight(gate, 6)).toBeGreaterThan(0.999);
  });

  it('gate – when the detector separates poorly, spends the retained budget: w = ½ at the generic 97th percentile, low at their median', () => {
    const outScores = range(-3, 1, 101); // median −1, 97th percentile 0.88
    const inScores = range(-1, 3, 100);
    const gate = calibrateGate(near(inScores), near(outScores));
    const weights = outScores.map((z) => gateWeight(gate, z));
    expect(gateWeight(gate, quantile(outScores, 1 - DEFAULT_GATE.retainBudget))).toBeCloseTo(0.5, 6);
    expect(gateWeight({ ...gate, cutoff: 0 }, quantile(outScores, 0.5))).toBeLessThanOrEqual(DEFAULT_GATE.low + 1e-9);
    expect(weights.filter((w) => w >= 0.5).length / outScores.length).toBeLessThanOrEqual(DEFAULT_GATE.retainBudget + 0.01);
    expect(gateWeight(gate, quantile(inScores, 0.75))).toBeGreaterThan(0.9); // forget-like inputs above the budget line are taken
  });

  it('gate – is 0 outside the support (farther from D_t than its held-in members), however high the score', () => {
    const heldIn = { scores: range(1, 6, 100), distances: range(0.5, 2, 100) };
    const gate = calibrateGate(heldIn, near(range(-10, -2, 200)));
    expect(gate.maxDistance).toBeCloseTo(DEFAULT_GATE.supportMargin * quantile(heldIn.distances, DEFAULT_GATE.supportQuantile), 9);
    expect(gateWeight(gate, 6, -2, 2)).toBeGreaterThan(0.99);
    expect(gateWeight(gate, 6, -2, gate.maxDistance * 1.01)).toBe(0);
  });

  it('gate – spends the budget on generic inputs inside the support only', () => {
    // Half the generic inputs score high but lie far away: the support check takes them out, and the budget (3% of all
    // generic inputs) is spent on the near half, i.e. 6% of it.
    const scores = [...range(-3, 1, 100), ...range(5, 9, 100)];
    const out = { scores, distances: scores.map((_, i) => (i < 100 ? 1 : 100)) };
    const gate = calibrateGate(near(range(-1, 3, 100)), out);
    const gated = scores.filter((z, i) => gateWeight(gate, z, -2, out.distances[i]) >= 0.5).length;
    expect(gated / scores.length).toBeLessThanOrEqual(DEFAULT_GATE.retainBudget + 0.01);
    expect(gated).toBeGreaterThan(0);
  });

  it('gate – is 1 for a forget sample itself (bank match), whatever its detector score', () => {
    const gate = calibrateGate(near(range(1, 6, 100)), near(range(-10, -2, 200)));
    expect(gateWeight(gate, -10, 1)).toBe(1);
    expect(gateWeight(gate, -10, DEFAULT_GATE.memberCos - 0.01)).toBe(0);
  });

  it('gate – rejects a cutoff at or above ½', () => {
    expect(() => calibrateGate(near([1, 2]), near([-2, -1]), { ...DEFAULT_GATE, cutoff: 0.5 })).toThrow(/cutoff/);
  });
});
