/** JSON Lines loader: one JSON object per line; blank lines are skipped. */
import type { LabeledDataset } from './dataset.js';
import { DataFileError } from './errors.js';
import { buildDataset, datasetName, readTextFile, type LoadOptions, type RawRecord } from './records.js';

/** Parses JSONL text into records; `file` only names the source in errors. */
export function parseJsonl(text: string, file: string): RawRecord[] {
  const records: RawRecord[] = [];
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = i + 1;
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new DataFileError(file, line, `invalid JSON (${reason}); each line must be one JSON object`, 'bad_json', {
        cause,
      });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      const got = Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value;
      throw new DataFileError(file, line, `expected a JSON object, got ${got}`, 'bad_json');
    }
    records.push({ line, values: value as Record<string, unknown> });
  }
  if (records.length === 0) {
    throw new DataFileError(file, 1, 'the file holds no records; expected one JSON object per line', 'empty_file');
  }
  return records;
}

/** Loads a labeled JSONL file. Throws DataFileError (file:line) on the first malformed record. */
export async function loadJsonl(path: string, opts: LoadOptions = {}): Promise<LabeledDataset> {
  const text = await readTextFile(path);
  return buildDataset(path, datasetName(path), parseJsonl(text, path), opts);
}
