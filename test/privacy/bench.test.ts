/**
 * `lethe bench privacy` at toy scale: both parts run end to end on the shipped tiny base and report the fields
 * BENCHMARKS.md records, with σ from the accountant's inverse and ε spent (ledger) at the target.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { benchPrivacy, privacyBenchOptions } from '../../src/bench/privacy.js';

describe('privacy benchmark', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('bench – the sample-level and central parts run at toy scale and report accuracy, σ and ε at the target', async () => {
    // Prepare: flags as `lethe bench privacy` parses them, scaled down
    const flags = { limit: '40', steps: '2', batch: '8', epsilons: '8,inf', clients: '16', q: '0.5', rounds: '1', 'local-steps': '1', 'local-lr': '2e-3' };
    const opts = privacyBenchOptions(flags);
    // Execute
    const { sample, central } = await benchPrivacy({ ...opts, central: { ...opts.central, testExamples: 16 } });
    // Assert: sample-level DP-SGD vs the same run without DP
    expect(sample).toMatchObject({ suite: 'privacy-sample', train_examples: 32, test_examples: 8, steps: 2, batch: 8, delta: 1e-5 });
    expect(sample!.q).toBeCloseTo(8 / 32, 12);
    expect(sample!.sigma).toBeGreaterThan(0);
    expect(sample!.epsilon).toBeLessThanOrEqual(8);
    expect(sample!.epsilon).toBeGreaterThan(7.99);
    for (const a of [sample!.accuracy_before, sample!.accuracy_nonprivate, sample!.accuracy_private]) expect(a).toBeGreaterThanOrEqual(0);
    expect(sample!.gap_points).toBeCloseTo(100 * (sample!.accuracy_nonprivate - sample!.accuracy_private), 9);
    // Assert: one point per ε, the private one spending its budget through the ledger, the non-private one none
    expect(central!.map((p) => p.epsilon_target)).toEqual([8, null]);
    const [dp, plain] = central!;
    expect(dp).toMatchObject({ suite: 'privacy-central', clients: 16, q: 0.5, expected_per_round: 8, rounds: 1, local_steps: 1, local_lr: 2e-3 });
    expect(dp!.sigma).toBeGreaterThan(0);
    expect(dp!.epsilon_spent).toBeLessThanOrEqual(8);
    expect(dp!.epsilon_spent).toBeGreaterThan(7.99);
    expect(plain).toMatchObject({ sigma: 0, epsilon_spent: null });
    for (const p of central!) expect(p.accuracy).toBeGreaterThanOrEqual(0);
  });

  it('bench – refuses unknown parts and bad rates with the flag named', () => {
    expect(() => privacyBenchOptions({ parts: 'sample,local' })).toThrow(/--parts: unknown part "local"/);
    expect(() => privacyBenchOptions({ q: '1.5' })).toThrow(/--q must be in \(0, 1\]/);
    expect(() => privacyBenchOptions({ epsilons: '8,-1' })).toThrow(/--epsilons must be positive/);
  });
});
