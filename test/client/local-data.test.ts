import { describe, expect, it } from 'vitest';
import { TaskError } from '../../src/client/errors.js';
import { DEFAULT_BUILTIN_SPLIT, LocalData, loadLocalData, parsePartition } from '../../src/client/local-data.js';
import { spamAssassin, trainTestSplit } from '../../src/data/index.js';
import { byteTokenizer } from '../../src/model/tokenizer.js';

const key = (e: { meta: Readonly<Record<string, string>> }): string => `${e.meta.group}/${e.meta.id}`;

describe('client local data', () => {
  it('local data – "I/N" parses 0-based and rejects I ≥ N', () => {
    expect(parsePartition('3/8')).toEqual({ index: 3, count: 8 });
    expect(() => parsePartition('8/8')).toThrow(TaskError);
    expect(() => parsePartition('a/b')).toThrow(/I\/N/);
  });

  it('local data – built-in shares are disjoint, cover the train split and never touch the eval split', async () => {
    // Arrange
    const partition = (index: number) => ({ index, count: 3, alpha: 0.5, seed: 'p' });

    // Act
    const shares = await Promise.all([0, 1, 2].map((i) => loadLocalData({ source: 'builtin:spam', partition: partition(i) })));

    // Assert
    const { train, test } = trainTestSplit(spamAssassin(), DEFAULT_BUILTIN_SPLIT);
    const seen = shares.flatMap((s) => s.examples.map(key));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe(train.examples.length);
    const testKeys = new Set(test.examples.map(key));
    expect(seen.some((k) => testKeys.has(k))).toBe(false);
  });

  it('local data – the same share in another process is the same examples (seeded)', async () => {
    const spec = { source: 'builtin:spam', partition: { index: 1, count: 4, alpha: 0.5, seed: 'same' } };
    const [a, b] = await Promise.all([loadLocalData(spec), loadLocalData(spec)]);
    expect(a.examples.map(key)).toEqual(b.examples.map(key));
  });

  it('local data – a task whose labels differ from the data\'s is refused as a data error', async () => {
    const data = new LocalData(await loadLocalData({ source: 'builtin:spam', partition: { index: 0, count: 50, alpha: 1, seed: 'p' } }));
    expect(() => data.encoded(['spam', 'ham'], byteTokenizer(), 8)).toThrow(/labels/);
    expect(data.encoded(['ham', 'spam'], byteTokenizer(), 8).n).toBe(data.size);
  });
});
