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

  it('refuses client counts, rounds and sizes that are not positive before starting any process', async () => {
    // Each used to start coordinators (or run) and fail later: a 0-client round never opened, 0 MiB measured nothing.
    await expect(benchCommand.run(['nats', '--round-clients', '0'])).rejects.toThrow(/--round-clients must be a positive integer, got 0/);
    await expect(benchCommand.run(['nats', '--ingest-clients', '2.5'])).rejects.toThrow(/--ingest-clients must be a positive integer, got 2.5/);
    await expect(benchCommand.run(['nats', '--ingest-mib', '0'])).rejects.toThrow(/--ingest-mib must be > 0, got 0/);
    await expect(benchCommand.run(['aggregate', '--round-clients', '0'])).rejects.toThrow(/--round-clients must be a positive integer/);
    await expect(benchCommand.run(['aggregate', '--ingest-mib', 'lots'])).rejects.toThrow(/--ingest-mib must be a number, got "lots"/);
    await expect(benchCommand.run(['curves', '--rounds', '0'])).rejects.toThrow(/--rounds must be a positive integer, got 0/);
  });
});
