import { describe, expect, it } from 'vitest';
import seedrandom from 'seedrandom';
import { sigmaForEpsilon } from '../../src/privacy/calibrate.js';
import { epsilonOf } from '../../src/privacy/rdp.js';

describe('calibrate – σ for a target ε', () => {
  it('matches opacus get_noise_multiplier (ε=8, δ=1e-5, q=0.04, 2000 steps → 1.3562)', () => {
    // pytorch/opacus opacus/tests/accountants_test.py test_get_noise_multiplier_rdp_steps (places=4). Opacus stops
    // its bisection within 0.01 of ε, so compare within 1%.
    const { sigma } = sigmaForEpsilon({ targetEpsilon: 8, delta: 1e-5, q: 0.04, steps: 2000 });
    expect(Math.abs(sigma - 1.3562) / 1.3562).toBeLessThan(0.01);
  });

  it('matches opacus get_noise_multiplier (ε=8, δ=1e-5, q=0.04, 90 epochs → 1.416)', () => {
    // pytorch/opacus opacus/tests/accountants_test.py test_get_noise_multiplier_rdp_epochs: steps = 90/0.04.
    const { sigma } = sigmaForEpsilon({ targetEpsilon: 8, delta: 1e-5, q: 0.04, steps: 2250 });
    expect(Math.abs(sigma - 1.416) / 1.416).toBeLessThan(0.01);
  });

  it('never overshoots the target and is tight (property over random targets)', () => {
    // Prepare: the property of opacus test_get_noise_multiplier_overshoot, plus tightness: 1% less noise overshoots.
    const rng = seedrandom('calibrate-property');
    const rates = [1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1, 1];
    const deltas = [1e-4, 1e-5, 1e-6];
    for (let trial = 0; trial < 12; trial++) {
      const targetEpsilon = 1 + 9 * rng();
      const q = rates[Math.floor(rng() * rates.length)]!;
      const delta = deltas[Math.floor(rng() * deltas.length)]!;
      const steps = 10 + Math.floor(rng() * 5000);
      // Execute
      const { sigma, epsilon } = sigmaForEpsilon({ targetEpsilon, delta, q, steps });
      // Assert
      const actual = epsilonOf({ q, noiseMultiplier: sigma, steps, delta }).epsilon;
      expect(actual).toBe(epsilon);
      expect(actual).toBeLessThanOrEqual(targetEpsilon);
      expect(epsilonOf({ q, noiseMultiplier: sigma * 0.99, steps, delta }).epsilon).toBeGreaterThan(targetEpsilon);
    }
  });

  it('refuses a target below what the orders can certify, saying so', () => {
    expect(() => sigmaForEpsilon({ targetEpsilon: 0.1, delta: 1e-6, q: 0.01, steps: 100 })).toThrow(/smallest ε these RDP orders/);
  });

  it('rejects invalid arguments', () => {
    expect(() => sigmaForEpsilon({ targetEpsilon: -1, delta: 1e-5, q: 0.1, steps: 10 })).toThrow(/target ε/);
    expect(() => sigmaForEpsilon({ targetEpsilon: 1, delta: 1e-5, q: 0, steps: 10 })).toThrow(/sampling rate/);
    expect(() => sigmaForEpsilon({ targetEpsilon: 1, delta: 1e-5, q: 0.1, steps: 1.5 })).toThrow(/steps/);
  });
});
