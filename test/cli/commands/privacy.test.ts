import { afterEach, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../../../src/cli/command.js';
import { privacyEpsilonCommand, privacySigmaCommand } from '../../../src/cli/commands/privacy.js';
import { epsilonOf } from '../../../src/privacy/rdp.js';

/** Runs a command and returns what it wrote to stdout and stderr. */
async function capture(run: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err += String(chunk);
    return true;
  });
  const code = await run();
  vi.restoreAllMocks();
  return { code, out, err };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('cli – lethe privacy epsilon', () => {
  it('prints ε and the best order as JSON, matching opacus (7.32911117143)', async () => {
    // pytorch/opacus opacus/tests/accountants_test.py test_rdp_accountant: q=0.04, σ=1.5, 2250 steps, δ=1e-5.
    const { code, out } = await capture(() =>
      privacyEpsilonCommand.run(['--q', '0.04', '--sigma', '1.5', '--steps', '2250', '--delta', '1e-5', '--json']),
    );
    expect(code).toBe(0);
    const parsed = JSON.parse(out) as { epsilon: number; order: number };
    expect(Object.keys(parsed)).toEqual(['epsilon', 'order']);
    expect(parsed.epsilon).toBeCloseTo(7.32911117143, 7);
    expect(parsed.order).toBe(3.9);
  });

  it('prints a sentence without --json', async () => {
    const { out } = await capture(() => privacyEpsilonCommand.run(['--q', '0.01', '--sigma', '1', '--steps', '10000', '--delta', '1e-5']));
    expect(out).toMatch(/^ε = 6\.71274 at δ = 0\.00001 \(best RDP order 4\.1\) for 10000 steps at q = 0\.01, σ = 1\n$/);
  });

  it('notes on stderr when the best order is at the edge of the grid', async () => {
    const { out, err } = await capture(() => privacyEpsilonCommand.run(['--q', '0.001', '--sigma', '20', '--steps', '10', '--delta', '1e-5', '--json']));
    expect(JSON.parse(out).order).toBe(63);
    expect(err).toMatch(/largest of the grid/);
  });

  it('answers q=0.01, σ=1, 10 000 steps in under 50 ms (best of three)', async () => {
    const argv = ['--q', '0.01', '--sigma', '1', '--steps', '10000', '--delta', '1e-5', '--json'];
    let best = Infinity;
    for (let run = 0; run < 3; run++) {
      const start = performance.now();
      const { out } = await capture(() => privacyEpsilonCommand.run(argv));
      best = Math.min(best, performance.now() - start);
      expect(JSON.parse(out).epsilon).toBeCloseTo(6.712738, 5);
    }
    expect(best).toBeLessThan(50);
  });

  it.each([
    [['--sigma', '1', '--steps', '10', '--delta', '1e-5'], /--q is required/],
    [['--q', '2', '--sigma', '1', '--steps', '10', '--delta', '1e-5'], /--q must be a sampling rate/],
    [['--q', '0.1', '--sigma', '0', '--steps', '10', '--delta', '1e-5'], /--sigma must be > 0/],
    [['--q', '0.1', '--sigma', '1', '--steps', '2.5', '--delta', '1e-5'], /--steps must be a positive integer/],
    [['--q', '0.1', '--sigma', '1', '--steps', '10', '--delta', '1'], /--delta must be in/],
    [['--q', 'abc', '--sigma', '1', '--steps', '10', '--delta', '1e-5'], /--q must be a number/],
    [['--q', '0.1', '--sigma', '1', '--steps', '10', '--delta', '1e-5', '--bogus'], /bogus/],
    [['--q', '0.1', '--sigma', '1', '--steps', '10', '--delta'], /--delta/],
  ])('rejects bad flags %j with a UsageError', async (argv, message) => {
    const run = privacyEpsilonCommand.run(argv);
    await expect(run).rejects.toBeInstanceOf(UsageError);
    await expect(privacyEpsilonCommand.run(argv)).rejects.toThrow(message);
  });
});

describe('cli – lethe privacy sigma', () => {
  it('prints the calibrated σ as JSON, which meets the target ε', async () => {
    const { code, out } = await capture(() =>
      privacySigmaCommand.run(['--q', '0.04', '--epsilon', '8', '--steps', '2000', '--delta', '1e-5', '--json']),
    );
    expect(code).toBe(0);
    const { sigma } = JSON.parse(out) as { sigma: number };
    // pytorch/opacus accountants_test.py test_get_noise_multiplier_rdp_steps → 1.3562.
    expect(Math.abs(sigma - 1.3562) / 1.3562).toBeLessThan(0.01);
    expect(epsilonOf({ q: 0.04, noiseMultiplier: sigma, steps: 2000, delta: 1e-5 }).epsilon).toBeLessThanOrEqual(8);
  });

  it('turns an unreachable target into a UsageError that says why', async () => {
    await expect(privacySigmaCommand.run(['--q', '0.01', '--epsilon', '0.01', '--steps', '100', '--delta', '1e-5'])).rejects.toThrow(
      UsageError,
    );
  });
});
