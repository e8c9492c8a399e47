/**
 * The labeled-text data set every trainer consumes. Data sets are immutable values (deeply frozen): splits and
 * partitions share Example objects and keep the parent's label list, so label ids mean the same class everywhere.
 */
import { DataArgumentError } from './errors.js';

export interface Example {
  readonly text: string;
  /** Index into the owning data set's `labels`. */
  readonly label: number;
  /** Provenance kept for analysis and partitioning (e.g. `group` for SpamAssassin). */
  readonly meta: Readonly<Record<string, string>>;
}

export interface LabeledDataset {
  readonly name: string;
  /** Class names; `labels[example.label]` is an example's class. */
  readonly labels: readonly string[];
  readonly examples: readonly Example[];
}

/** Freezes an example (and its meta) so shared references cannot be mutated by a consumer. */
export function makeExample(text: string, label: number, meta: Record<string, string> = {}): Example {
  return Object.freeze({ text, label, meta: Object.freeze(meta) });
}

/** Builds a frozen data set; checks every label indexes `labels` (a broken invariant here is a programming error). */
export function makeDataset(name: string, labels: readonly string[], examples: readonly Example[]): LabeledDataset {
  for (const [i, ex] of examples.entries()) {
    if (!Number.isInteger(ex.label) || ex.label < 0 || ex.label >= labels.length) {
      throw new DataArgumentError(
        `data set '${name}': example ${i} has label ${ex.label}, outside [0, ${labels.length})`,
        'bad_labels',
      );
    }
  }
  return Object.freeze({ name, labels: Object.freeze([...labels]), examples: Object.freeze([...examples]) });
}

/** The examples of `ds` at `indices` (in that order), under a new name, keeping the label list. */
export function subset(ds: LabeledDataset, indices: readonly number[], name: string): LabeledDataset {
  return Object.freeze({
    name,
    labels: ds.labels,
    examples: Object.freeze(indices.map((i) => ds.examples[i]!)),
  });
}

/** Locale-independent string order (UTF-16 code units), so sorted label and group lists agree on every machine. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Number of examples per label id: result[k] counts label k. */
export function labelCounts(ds: LabeledDataset): number[] {
  const counts = new Array<number>(ds.labels.length).fill(0);
  for (const ex of ds.examples) counts[ex.label]! += 1;
  return counts;
}

/** Checks a caller-given label set: non-empty, no duplicates. */
export function validateLabels(labels: readonly string[]): void {
  if (labels.length === 0) throw new DataArgumentError('the label set is empty; give at least one label', 'bad_labels');
  const seen = new Set<string>();
  for (const l of labels) {
    if (seen.has(l)) throw new DataArgumentError(`label '${l}' appears twice in the label set`, 'bad_labels');
    seen.add(l);
  }
}
