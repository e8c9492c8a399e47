import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessGroup } from '../../src/demo/processes.js';
import { tempDir } from '../client/helpers.js';

describe('demo processes', () => {
  const dir = tempDir('lethe-procs-');
  afterAll(() => dir.remove());
  // A stand-in for the lethe entry point: prints its arguments, then either waits or ignores SIGTERM.
  const script = join(dir.path, 'child.mjs');
  writeFileSync(
    script,
    // The handler goes in before "ready", so a SIGTERM sent on seeing "ready" always finds it installed.
    "if (process.argv[2] === 'stubborn') process.on('SIGTERM', () => console.log('ignoring SIGTERM'));\n" +
      "console.log('ready ' + process.argv.slice(2).join(' '));\n" +
      'setInterval(() => undefined, 1000);\n',
  );

  it('processes – a child is watched for a line and its output goes to its log file', async () => {
    const group = new ProcessGroup({ executable: process.execPath, script });
    const child = group.spawn('one', ['polite', 'x'], join(dir.path, 'one.log'));
    const m = await child.waitForLine(/ready (\w+) (\w+)/, 10_000);
    await group.stopAll(2000);
    expect(m.slice(1)).toEqual(['polite', 'x']);
    expect(await child.exited).toBe('SIGTERM');
    expect(readFileSync(child.logPath, 'utf8')).toContain('ready polite x');
  });

  it('processes – stopping the group kills a child that ignores SIGTERM after the grace period (no orphans)', async () => {
    // Arrange
    const group = new ProcessGroup({ executable: process.execPath, script });
    const polite = group.spawn('polite', ['polite'], join(dir.path, 'p.log'));
    const stubborn = group.spawn('stubborn', ['stubborn'], join(dir.path, 's.log'));
    await Promise.all([polite.waitForLine(/ready/, 10_000), stubborn.waitForLine(/ready/, 10_000)]);

    // Act
    await group.stopAll(300);

    // Assert
    expect(await polite.exited).toBe('SIGTERM');
    expect(await stubborn.exited).toBe('SIGKILL');
    expect(group.running).toHaveLength(0);
    expect(() => group.spawn('late', [], join(dir.path, 'l.log'))).toThrow(/stopping/);
  });

  it('processes – waiting for a line fails clearly when the child exits first, quoting its last words', async () => {
    const failing = join(dir.path, 'failing.mjs');
    writeFileSync(failing, "console.log('starting');\nconsole.error('NATS unavailable (connection refused)');\nprocess.exit(1);\n");
    const group = new ProcessGroup({ executable: process.execPath, script: failing });
    const child = group.spawn('broken', [], join(dir.path, 'b.log'));
    await expect(child.waitForLine(/ready/, 10_000)).rejects.toThrow(/exited \(1\) before printing \/ready\/: "NATS unavailable \(connection refused\)"; see /);
    // A crash ends with a stack and Node's banner: the quote is the error itself.
    const crashing = join(dir.path, 'crashing.mjs');
    writeFileSync(crashing, "throw new Error('boom');\n");
    const crashed = new ProcessGroup({ executable: process.execPath, script: crashing }).spawn('crashed', [], join(dir.path, 'c.log'));
    await expect(crashed.waitForLine(/ready/, 10_000)).rejects.toThrow(/before printing \/ready\/: "Error: boom"; see /);
  });
});
