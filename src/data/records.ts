/**
 * Shared by the JSONL and CSV loaders: turns parsed records into a LabeledDataset, resolving labels and meta fields
 * with file/line-precise errors.
 *
 * Label rules (same for both formats; a CSV cell is always a string, a JSON label a string or an integer):
 * - Given `labels`: a value matching a label name maps to its index; otherwise a non-negative integer value (JSON
 *   number or a CSV cell of digits) is taken as a class index if in range; anything else is `unknown_label`.
 * - Inferred: the distinct values as strings, sorted numerically when all are integers ("2" < "10"), else by code
 *   unit (locale-independent, so the ids are the same on every machine).
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { byCodeUnit, makeDataset, makeExample, validateLabels, type Example, type LabeledDataset } from './dataset.js';
import { DataFileError } from './errors.js';

export interface LoadOptions {
  /** Field holding the example text. Default 'text'. */
  readonly textField?: string;
  /** Field holding the label (name or class index). Default 'label'. */
  readonly labelField?: string;
  /** The label set, in class-id order. Default: inferred from the file (see header). */
  readonly labels?: readonly string[];
  /** Fields copied (as strings) into `Example.meta`; each must be present in every record. Default none. */
  readonly metaFields?: readonly string[];
}

/** The field names `opts` selects, defaults applied. */
export function fieldNames(opts: LoadOptions): {
  textField: string;
  labelField: string;
  metaFields: readonly string[];
} {
  return {
    textField: opts.textField ?? 'text',
    labelField: opts.labelField ?? 'label',
    metaFields: opts.metaFields ?? [],
  };
}

/** One parsed record; `line` is the 1-based line where it starts in `file`. */
export interface RawRecord {
  readonly line: number;
  readonly values: Readonly<Record<string, unknown>>;
}

const INTEGER = /^-?(0|[1-9][0-9]*)$/;
const INDEX = /^(0|[1-9][0-9]*)$/;

function has(values: Readonly<Record<string, unknown>>, field: string): boolean {
  return Object.prototype.hasOwnProperty.call(values, field) && values[field] !== undefined;
}

function labelName(file: string, rec: RawRecord, field: string): string {
  const v = rec.values[field];
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  throw new DataFileError(
    file,
    rec.line,
    `label field '${field}' is ${JSON.stringify(v)}; use a label name (string) or a class index (integer)`,
    'bad_field',
  );
}

function inferLabels(names: readonly string[]): string[] {
  const distinct = [...new Set(names)];
  if (distinct.every((n) => INTEGER.test(n))) return distinct.sort((a, b) => Number(a) - Number(b));
  return distinct.sort(byCodeUnit);
}

function textOf(file: string, rec: RawRecord, field: string): string {
  const v = rec.values[field];
  if (typeof v !== 'string') {
    throw new DataFileError(file, rec.line, `text field '${field}' is ${typeof v}, expected a string`, 'bad_field');
  }
  return v;
}

function metaOf(file: string, rec: RawRecord, fields: readonly string[]): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const f of fields) {
    if (!has(rec.values, f)) {
      const message = `missing meta field '${f}'; add it or drop it from metaFields`;
      throw new DataFileError(file, rec.line, message, 'missing_field');
    }
    const v = rec.values[f];
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new DataFileError(file, rec.line, `meta field '${f}' must be a string, number or boolean`, 'bad_field');
    }
    meta[f] = String(v);
  }
  return meta;
}

function resolveLabel(
  file: string,
  rec: RawRecord,
  name: string,
  labels: readonly string[],
  ids: ReadonlyMap<string, number>,
): number {
  const byName = ids.get(name);
  if (byName !== undefined) return byName;
  if (INDEX.test(name) && Number(name) < labels.length) return Number(name);
  throw new DataFileError(
    file,
    rec.line,
    `unknown label '${name}'; expected one of [${labels.join(', ')}] or a class index below ${labels.length}`,
    'unknown_label',
  );
}

/** Builds the data set named `name` from `records` of `file`. Throws DataFileError on the first bad record. */
export function buildDataset(
  file: string,
  name: string,
  records: readonly RawRecord[],
  opts: LoadOptions = {},
): LabeledDataset {
  const { textField, labelField, metaFields } = fieldNames(opts);
  const given = opts.labels;
  if (given !== undefined) validateLabels(given);
  const givenIds = new Map((given ?? []).map((l, i) => [l, i] as const));

  // One pass in file order, so the error names the first bad line whatever is wrong with it.
  const parsed = records.map((rec) => {
    for (const field of [textField, labelField]) {
      if (!has(rec.values, field)) {
        const option = field === textField ? 'textField' : 'labelField';
        throw new DataFileError(
          file,
          rec.line,
          `missing field '${field}'; set ${option} if the file names it differently`,
          'missing_field',
        );
      }
    }
    const name = labelName(file, rec, labelField);
    const text = textOf(file, rec, textField);
    const meta = metaOf(file, rec, metaFields);
    const label = given === undefined ? undefined : resolveLabel(file, rec, name, given, givenIds);
    return { text, name, label, meta };
  });

  const labels = given ?? inferLabels(parsed.map((p) => p.name));
  const ids = new Map(labels.map((l, i) => [l, i] as const));
  const examples: Example[] = parsed.map((p) => makeExample(p.text, p.label ?? ids.get(p.name)!, p.meta));
  return makeDataset(name, labels, examples);
}

/** Reads a UTF-8 text file (BOM stripped) for a loader; a failure becomes DataFileError 'read_failed'. */
export async function readTextFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new DataFileError(file, undefined, `cannot read the file (${reason})`, 'read_failed', { cause });
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Data set name for a file: its base name without the extension ("data/mail.jsonl" -> "mail"). */
export function datasetName(file: string): string {
  return basename(file, extname(file));
}
