import { describe, expect, it } from 'vitest';
import { COMMANDS, findCommand } from '../../src/cli/registry.js';

describe('command registry', () => {
  it('loads, for every entry, the command whose own path is that entry’s path', async () => {
    for (const entry of COMMANDS) expect((await entry.load()).path).toEqual(entry.path);
  });

  it('lists each command path once', () => {
    const keys = COMMANDS.map((c) => c.path.join(' '));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('picks the longest matching path and hands over the remaining arguments', () => {
    const found = findCommand(['privacy', 'epsilon', '--q', '0.1']);
    expect(found?.entry.path).toEqual(['privacy', 'epsilon']);
    expect(found?.rest).toEqual(['--q', '0.1']);
    expect(findCommand(['no-such-command'])).toBeUndefined();
  });
});
