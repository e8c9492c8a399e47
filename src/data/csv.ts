/**
 * CSV loader: RFC 4180 with a header row. Fields are separated by ',', records by CRLF or LF; a field may be
 * enclosed in double quotes, inside which commas, line breaks and doubled quotes ("") are literal. Completely empty
 * lines are skipped (trailing newlines are common). Anything else RFC 4180 forbids — a quote inside an unquoted
 * field, text after a closing quote, an unterminated quote, a row with the wrong number of fields — is an error.
 */
import type { LabeledDataset } from './dataset.js';
import { DataFileError } from './errors.js';
import { buildDataset, datasetName, fieldNames, readTextFile, type LoadOptions, type RawRecord } from './records.js';

/** One CSV row and the 1-based line it starts on. */
export interface CsvRow {
  readonly line: number;
  readonly fields: readonly string[];
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

/** Splits CSV text into rows (no header handling); `file` only names the source in errors. */
export function parseCsvRows(text: string, file: string): CsvRow[] {
  const rows: CsvRow[] = [];
  let fields: string[] = [];
  let line = 1; // current physical line
  let rowLine = 1; // line where the current row started
  let i = 0;
  const n = text.length;
  const isBreak = (at: number): number => {
    // length of the line break at `at` (0 if none)
    const c = text.charCodeAt(at);
    if (c === LF) return 1;
    if (c === CR && text.charCodeAt(at + 1) === LF) return 2;
    return 0;
  };

  while (i <= n) {
    // At the start of a field.
    if (fields.length === 0 && (i === n || isBreak(i) > 0)) {
      // An empty line (or end of input) between rows: skip it.
      if (i === n) break;
      i += isBreak(i);
      line += 1;
      rowLine = line;
      continue;
    }
    let value: string;
    if (text.charCodeAt(i) === QUOTE) {
      const startLine = line;
      let out = '';
      let j = i + 1;
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) {
          throw new DataFileError(file, startLine, 'unterminated quoted field (a closing " is missing)', 'bad_csv');
        }
        const chunk = text.slice(j, q);
        for (let k = 0; k < chunk.length; k++) if (chunk.charCodeAt(k) === LF) line += 1;
        out += chunk;
        if (text.charCodeAt(q + 1) === QUOTE) {
          out += '"';
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      if (i < n && text.charCodeAt(i) !== COMMA && isBreak(i) === 0) {
        throw new DataFileError(
          file,
          line,
          `unexpected '${text[i]}' after a closing quote; a quote inside a quoted field must be doubled ("")`,
          'bad_csv',
        );
      }
      value = out;
    } else {
      let j = i;
      while (j < n && text.charCodeAt(j) !== COMMA && isBreak(j) === 0) {
        if (text.charCodeAt(j) === QUOTE) {
          throw new DataFileError(
            file,
            line,
            'a quote inside an unquoted field; enclose the field in quotes and double the inner quote ("")',
            'bad_csv',
          );
        }
        j++;
      }
      value = text.slice(i, j);
      i = j;
    }
    fields.push(value);
    // After a field: a comma continues the row; a break or the end finishes it.
    if (i < n && text.charCodeAt(i) === COMMA) {
      i += 1;
      if (i === n || isBreak(i) > 0) fields.push(''); // trailing comma: one more empty field
      else continue;
    }
    rows.push({ line: rowLine, fields });
    fields = [];
    if (i >= n) break;
    i += isBreak(i);
    line += 1;
    rowLine = line;
  }
  return rows;
}

/**
 * Parses CSV text with a header row into records keyed by column name. `required` columns must be in the header
 * (checked here so the error points at the header line, not at every row).
 */
export function parseCsv(text: string, file: string, required: readonly string[] = []): RawRecord[] {
  const rows = parseCsvRows(text, file);
  const header = rows[0];
  if (header === undefined) {
    throw new DataFileError(file, 1, 'the file is empty; expected a header row and data rows', 'empty_file');
  }
  const seen = new Set<string>();
  for (const name of header.fields) {
    if (seen.has(name)) {
      throw new DataFileError(file, header.line, `duplicate column '${name}' in the header`, 'bad_csv');
    }
    seen.add(name);
  }
  for (const name of required) {
    if (!seen.has(name)) {
      throw new DataFileError(
        file,
        header.line,
        `the header has no column '${name}' (columns: ${header.fields.join(', ')}); set the field options to match`,
        'missing_field',
      );
    }
  }
  if (rows.length === 1) {
    throw new DataFileError(file, header.line + 1, 'no data rows after the header', 'empty_file');
  }
  return rows.slice(1).map((row) => {
    if (row.fields.length !== header.fields.length) {
      throw new DataFileError(
        file,
        row.line,
        `expected ${header.fields.length} fields (as in the header), found ${row.fields.length}`,
        'bad_csv',
      );
    }
    const values: Record<string, string> = Object.create(null); // a column may be named "__proto__"
    header.fields.forEach((name, k) => (values[name] = row.fields[k]!));
    return { line: row.line, values };
  });
}

/** Loads a labeled CSV file with a header row. Throws DataFileError (file:line) on the first malformed row. */
export async function loadCsv(path: string, opts: LoadOptions = {}): Promise<LabeledDataset> {
  const text = await readTextFile(path);
  const { textField, labelField, metaFields } = fieldNames(opts);
  const required = [textField, labelField, ...metaFields];
  return buildDataset(path, datasetName(path), parseCsv(text, path, required), opts);
}
