import { describe, expect, it } from 'vitest';
import { DataArgumentError, loadDataset } from '../../src/data/index.js';
import { tempFiles } from './helpers.js';

const files = tempFiles();

describe('loadDataset', () => {
  it('loadDataset – dispatches .jsonl and .csv paths to their loaders with the given options', async () => {
    const jsonl = files.write('a.jsonl', '{"body":"x","label":"pos"}\n');
    const csv = files.write('b.CSV', 'text,label\ny,neg\n');

    const fromJsonl = await loadDataset(jsonl, { textField: 'body' });
    const fromCsv = await loadDataset(csv);

    expect(fromJsonl.examples[0]!.text).toBe('x');
    expect(fromCsv.labels).toEqual(['neg']);
  });

  it('loadDataset – builtin:spam is the SpamAssassin corpus', async () => {
    const ds = await loadDataset('builtin:spam');

    expect([ds.name, ds.examples.length]).toEqual(['spam-assassin', 6046]);
  });

  it('loadDataset – rejects unknown built-ins and unsupported extensions with bad_spec', async () => {
    await expect(loadDataset('builtin:mnist')).rejects.toThrow(DataArgumentError);
    await expect(loadDataset('data.parquet')).rejects.toMatchObject({ code: 'bad_spec' });
  });
});
