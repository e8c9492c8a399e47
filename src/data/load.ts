/** Resolves a data-set spec from the CLI or a config file: 'builtin:spam' or a path ending in .jsonl / .csv. */
import { loadCsv } from './csv.js';
import type { LabeledDataset } from './dataset.js';
import { DataArgumentError } from './errors.js';
import { loadJsonl } from './jsonl.js';
import type { LoadOptions } from './records.js';
import { spamAssassin } from './spam-assassin.js';

const BUILTINS: Readonly<Record<string, () => LabeledDataset>> = Object.freeze({
  spam: spamAssassin,
  'spam-assassin': spamAssassin,
});

/** Loads the data set named by `spec`; `opts` (field names, label set) apply to files only. */
export async function loadDataset(spec: string, opts: LoadOptions = {}): Promise<LabeledDataset> {
  if (spec.startsWith('builtin:')) {
    const build = BUILTINS[spec.slice('builtin:'.length)];
    if (build === undefined) {
      throw new DataArgumentError(
        `unknown built-in data set '${spec}'; known: ${Object.keys(BUILTINS).map((k) => `builtin:${k}`).join(', ')}`,
        'bad_spec',
      );
    }
    return build();
  }
  const lower = spec.toLowerCase();
  if (lower.endsWith('.jsonl')) return loadJsonl(spec, opts);
  if (lower.endsWith('.csv')) return loadCsv(spec, opts);
  throw new DataArgumentError(
    `cannot load '${spec}': use builtin:spam or a file path ending in .jsonl or .csv`,
    'bad_spec',
  );
}
