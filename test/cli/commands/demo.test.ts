import { describe, expect, it } from 'vitest';
import { demoOptions } from '../../../src/cli/commands/demo.js';
import { UsageError } from '../../../src/cli/command.js';
import { DEFAULT_DEMO, demoRunConfig } from '../../../src/demo/config.js';

describe('lethe demo flags', () => {
  it('demo – defaults: 8 clients, Dirichlet α 0.5, any free port, no DP', () => {
    const o = demoOptions(['--data-dir', '/tmp/x']);
    expect(o).toMatchObject({ clients: 8, alpha: 0.5, port: 0, privacy: false, rounds: DEFAULT_DEMO.rounds, dataDir: '/tmp/x' });
    const run = demoRunConfig(o);
    expect(run).toMatchObject({ task: 'builtin:spam', eval_data: 'builtin:spam', sample_rate: 1, aggregation: 'ffa' });
    expect(run.privacy).toBeUndefined();
  });

  it('demo – --privacy turns on central DP with a budget', () => {
    const run = demoRunConfig(demoOptions(['--privacy', '--clients', '4']));
    expect(run.privacy).toMatchObject({ mode: 'central', epsilon: DEFAULT_DEMO.dp.epsilon, noise_multiplier: 'auto' });
    expect(run.min_clients).toBe(2);
  });

  it('demo – --unlearn turns on the unlearning scenario; it is off by default', () => {
    expect(demoOptions(['--unlearn']).unlearn).toBe(true);
    expect(demoOptions([]).unlearn).toBe(false);
  });

  it('demo – bad numbers name the flag', () => {
    expect(() => demoOptions(['--clients', '1'])).toThrow(/--clients must be at least 2/);
    expect(() => demoOptions(['--alpha', '0'])).toThrow(/--alpha/);
    expect(() => demoOptions(['--port', '70000'])).toThrow(/--port/);
  });
});
