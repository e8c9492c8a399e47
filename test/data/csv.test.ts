import { describe, expect, it } from 'vitest';
import { loadCsv, parseCsvRows } from '../../src/data/index.js';
import { fileError, tempFiles } from './helpers.js';

const files = tempFiles();

describe('parseCsvRows', () => {
  it('parseCsvRows – handles quoted commas, doubled quotes, line breaks in quotes, CRLF and empty fields', () => {
    const text = 'a,b,c\r\n"x, y","say ""hi""","two\nlines"\r\n,,\n"",plain,\n';

    const rows = parseCsvRows(text, 'mem.csv');

    expect(rows).toEqual([
      { line: 1, fields: ['a', 'b', 'c'] },
      { line: 2, fields: ['x, y', 'say "hi"', 'two\nlines'] },
      { line: 4, fields: ['', '', ''] },
      { line: 5, fields: ['', 'plain', ''] },
    ]);
  });

  it('parseCsvRows – skips empty lines and tolerates a missing final newline', () => {
    expect(parseCsvRows('h\n\nv1\n\n\nv2', 'mem.csv')).toEqual([
      { line: 1, fields: ['h'] },
      { line: 3, fields: ['v1'] },
      { line: 6, fields: ['v2'] },
    ]);
  });

  it('parseCsvRows – rejects an unterminated quote at the line where the field starts', () => {
    expect(() => parseCsvRows('h\n"open\nstill open\n', 'mem.csv')).toThrow(
      expect.objectContaining({ code: 'bad_csv', line: 2 }),
    );
  });

  it('parseCsvRows – rejects text after a closing quote and a quote inside an unquoted field', () => {
    const badCsvAtLine2 = expect.objectContaining({ code: 'bad_csv', line: 2 });

    expect(() => parseCsvRows('h\n"done"x\n', 'mem.csv')).toThrow(badCsvAtLine2);
    expect(() => parseCsvRows('h\nab"c\n', 'mem.csv')).toThrow(badCsvAtLine2);
  });
});

describe('loadCsv', () => {
  it('loadCsv – loads a header-row file with configurable fields, labels and meta', async () => {
    const path = files.write(
      'reviews.csv',
      '\uFEFFbody,y,source\n"Great, would buy again",pos,web\nAwful,neg,"mail"\n"He said ""meh""",neg,web\n',
    );

    const ds = await loadCsv(path, { textField: 'body', labelField: 'y', metaFields: ['source'] });

    expect(ds.name).toBe('reviews');
    expect(ds.labels).toEqual(['neg', 'pos']);
    expect(ds.examples.map((e) => [e.text, e.label, e.meta.source])).toEqual([
      ['Great, would buy again', 1, 'web'],
      ['Awful', 0, 'mail'],
      ['He said "meh"', 0, 'web'],
    ]);
  });

  it('loadCsv – digit labels map to class indices when they match no label name', async () => {
    const path = files.write('digits.csv', 'text,label\na,1\nb,0\n');

    const ds = await loadCsv(path, { labels: ['ham', 'spam'] });

    expect(ds.examples.map((e) => e.label)).toEqual([1, 0]);
  });

  it('loadCsv – a row with the wrong number of fields is a bad_csv error at its line', async () => {
    const path = files.write('short.csv', 'text,label\na,x\n"multi\nline",x\nb\n');

    const err = await fileError(loadCsv(path));

    expect([err.code, err.line]).toEqual(['bad_csv', 5]);
    expect(err.message).toMatch(/expected 2 fields.*found 1/);
  });

  it('loadCsv – bad quoting in a file is a bad_csv error naming file and line', async () => {
    const path = files.write('quote.csv', 'text,label\n"fine",x\n"broken"oops,x\n');

    const err = await fileError(loadCsv(path));

    expect([err.code, err.file, err.line]).toEqual(['bad_csv', path, 3]);
  });

  it('loadCsv – a header without the label column is a missing_field error at line 1', async () => {
    const path = files.write('nolabel.csv', 'text,category\na,x\n');

    const err = await fileError(loadCsv(path));

    expect([err.code, err.line]).toEqual(['missing_field', 1]);
    expect(err.message).toMatch(/no column 'label'/);
  });

  it('loadCsv – an empty file and a header-only file are empty_file errors', async () => {
    const empty = files.write('empty.csv', '');
    const headerOnly = files.write('header.csv', 'text,label\n');

    expect(await fileError(loadCsv(empty))).toMatchObject({ code: 'empty_file', line: 1 });
    expect(await fileError(loadCsv(headerOnly))).toMatchObject({ code: 'empty_file', line: 2 });
  });

  it('loadCsv – a label outside the given set is an unknown_label error', async () => {
    const path = files.write('unknown.csv', 'text,label\na,ham\nb,7\n');

    const err = await fileError(loadCsv(path, { labels: ['ham', 'spam'] }));

    expect(err).toMatchObject({ code: 'unknown_label', line: 3 });
  });

  it('loadCsv – a duplicate header column is rejected', async () => {
    const path = files.write('dup.csv', 'text,label,text\na,b,c\n');

    expect(await fileError(loadCsv(path))).toMatchObject({ code: 'bad_csv', line: 1 });
  });
});
