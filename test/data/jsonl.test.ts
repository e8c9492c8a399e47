import { describe, expect, it } from 'vitest';
import { loadJsonl } from '../../src/data/index.js';
import { fileError, tempFiles } from './helpers.js';

const files = tempFiles();

describe('loadJsonl', () => {
  it('loadJsonl – reads text, string labels (inferred, sorted) and meta; skips blank lines', async () => {
    const path = files.write(
      'mail.jsonl',
      '{"text":"win cash","label":"spam","src":"a"}\n\n{"text":"lunch?","label":"ham","src":7}\r\n',
    );

    const ds = await loadJsonl(path, { metaFields: ['src'] });

    expect(ds.name).toBe('mail');
    expect(ds.labels).toEqual(['ham', 'spam']);
    expect(ds.examples.map((e) => [e.text, e.label, e.meta.src])).toEqual([
      ['win cash', 1, 'a'],
      ['lunch?', 0, '7'],
    ]);
  });

  it('loadJsonl – integer labels infer a numerically sorted label set', async () => {
    const path = files.write('ints.jsonl', ['{"t":"a","y":10}', '{"t":"b","y":2}', '{"t":"c","y":0}'].join('\n'));

    const ds = await loadJsonl(path, { textField: 't', labelField: 'y' });

    expect(ds.labels).toEqual(['0', '2', '10']);
    expect(ds.examples.map((e) => e.label)).toEqual([2, 1, 0]);
  });

  it('loadJsonl – with a given label set, matches names, then takes in-range integers as class indices', async () => {
    const path = files.write('given.jsonl', '{"text":"a","label":"spam"}\n{"text":"b","label":0}\n');

    const ds = await loadJsonl(path, { labels: ['ham', 'spam'] });

    expect(ds.labels).toEqual(['ham', 'spam']);
    expect(ds.examples.map((e) => e.label)).toEqual([1, 0]);
  });

  it('loadJsonl – an invalid JSON line is a bad_json error naming file and line', async () => {
    const path = files.write('bad.jsonl', '{"text":"a","label":"x"}\n{"text": "b", "label": }\n');

    const err = await fileError(loadJsonl(path));

    expect([err.code, err.file, err.line]).toEqual(['bad_json', path, 2]);
    expect(err.message).toContain(`${path}:2:`);
  });

  it('loadJsonl – a line holding a JSON array is rejected as not an object', async () => {
    const path = files.write('array.jsonl', '["a","x"]\n');

    const err = await fileError(loadJsonl(path));

    expect([err.code, err.line]).toEqual(['bad_json', 1]);
  });

  it('loadJsonl – a record without the label field is a missing_field error at its line', async () => {
    const path = files.write('missing.jsonl', '{"text":"a","label":"x"}\n\n{"text":"b"}\n');

    const err = await fileError(loadJsonl(path));

    expect([err.code, err.line]).toEqual(['missing_field', 3]);
    expect(err.message).toMatch(/missing field 'label'/);
  });

  it('loadJsonl – a non-string text or a fractional label is a bad_field error', async () => {
    const text = files.write('numtext.jsonl', '{"text":5,"label":"x"}\n');
    const label = files.write('fraclabel.jsonl', '{"text":"a","label":"x"}\n{"text":"a","label":0.5}\n');

    expect(await fileError(loadJsonl(text))).toMatchObject({ code: 'bad_field', line: 1 });
    expect(await fileError(loadJsonl(label))).toMatchObject({ code: 'bad_field', line: 2 });
  });

  it('loadJsonl – a label outside the given set is an unknown_label error', async () => {
    const lines = ['{"text":"a","label":"ham"}', '{"text":"b","label":"eggs"}', '{"text":"c","label":2}'];
    const path = files.write('unknown.jsonl', lines.join('\n'));

    const err = await fileError(loadJsonl(path, { labels: ['ham', 'spam'] }));

    expect([err.code, err.line]).toEqual(['unknown_label', 2]);
  });

  it('loadJsonl – the first bad line is reported whatever is wrong with the later ones', async () => {
    const path = files.write('order.jsonl', '{"text":"a","label":"x"}\n{"text":1,"label":"x"}\n{"text":"c"}\n');

    expect(await fileError(loadJsonl(path))).toMatchObject({ code: 'bad_field', line: 2 });
  });

  it('loadJsonl – an empty or blank-only file is an empty_file error', async () => {
    const path = files.write('empty.jsonl', '\n  \n');

    expect(await fileError(loadJsonl(path))).toMatchObject({ code: 'empty_file', line: 1 });
  });

  it('loadJsonl – a requested meta field missing from a record is an error', async () => {
    const path = files.write('meta.jsonl', '{"text":"a","label":"x","g":"1"}\n{"text":"b","label":"x"}\n');

    expect(await fileError(loadJsonl(path, { metaFields: ['g'] }))).toMatchObject({ code: 'missing_field', line: 2 });
  });

  it('loadJsonl – a missing file is a read_failed error chaining the system error', async () => {
    const err = await fileError(loadJsonl(`${files.dir}/nope.jsonl`));

    expect(err.code).toBe('read_failed');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });
});
