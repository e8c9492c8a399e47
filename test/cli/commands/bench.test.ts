import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/cli/command.js';
import { benchCommand } from '../../../src/cli/commands/bench.js';

describe('cli – lethe bench', () => {
  it('refuses an unknown suite, and a bad --generic-examples for the unlearning bench before running anything', async () => {
    await expect(benchCommand.run(['nope'])).rejects.toThrow(UsageError);
    await expect(benchCommand.run(['nope'])).rejects.toThrow(/name a suite: .*unlearning.*\(got "nope"\)/);
    await expect(benchCommand.run(['unlearning', '--generic-examples', '0'])).rejects.toThrow(/--generic-examples must be a positive integer, got 0/);
    await expect(benchCommand.run(['unlearning', '--generic-examples', 'many'])).rejects.toThrow(/--generic-examples must be a number, got "many"/);
  });
});
