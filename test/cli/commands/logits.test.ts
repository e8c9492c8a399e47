import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { logitsCommand } from '../../../src/cli/commands/logits.js';
import { UsageError } from '../../../src/cli/command.js';
import { saveCheckpoint } from '../../../src/model/checkpoint.js';
import { byteTokenizer } from '../../../src/model/tokenizer.js';
import { randomWeights, TEST_CONFIG } from '../../model/fixtures.js';
import { maxAbsDiff, referenceLogits } from '../../model/reference-gpt2.js';

let dir: string;
const weights = randomWeights(TEST_CONFIG, 'cli');
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lethe-logits-'));
  await saveCheckpoint(dir, TEST_CONFIG, weights);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function capture(argv: string[]): Promise<{ code: number; out: string }> {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
    chunks.push(String(c));
    return true;
  });
  try {
    return { code: await logitsCommand.run(argv), out: chunks.join('') };
  } finally {
    spy.mockRestore();
  }
}

describe('lethe logits', () => {
  it('logits – --json prints the last position\'s logits and the byte tokens, matching the reference forward', async () => {
    const { code, out } = await capture(['--model', dir, '--text', 'héllo', '--json', '--backend', 'cpu']);
    const parsed = JSON.parse(out) as { logits: number[]; tokens: number[] };
    const tokens = byteTokenizer().encode('héllo');
    expect(code).toBe(0);
    expect(parsed.tokens).toEqual(tokens);
    expect(maxAbsDiff(parsed.logits, referenceLogits(TEST_CONFIG, weights, tokens).at(-1)!)).toBeLessThan(1e-4);
  });

  it('logits – text mode lists the top-k next tokens with probabilities', async () => {
    const { out } = await capture(['--model', dir, '--text', 'ab', '--top', '3', '--backend', 'cpu']);
    expect(out.split('\n').filter((l) => /^\s+\d+\s+id/.test(l))).toHaveLength(3);
    expect(out).toMatch(/^2 tokens; top 3 next tokens of 257/);
  });

  it('logits – a missing --model is a usage error', async () => {
    await expect(logitsCommand.run(['--text', 'x'])).rejects.toThrow(UsageError);
  });
});
