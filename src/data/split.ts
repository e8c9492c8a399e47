/** Train/test split: deterministic given the seed, stratified by label unless asked otherwise. Pure. */
import { labelCounts, subset, type LabeledDataset } from './dataset.js';
import { DataArgumentError } from './errors.js';
import { seededUniform, shuffled } from './random.js';

export interface SplitOptions {
  /** Fraction of examples in the test set, in (0, 1); the count is rounded and kept within [1, n - 1]. */
  readonly testFraction: number;
  /** Seed of the shuffle; the same seed gives the same split. */
  readonly seed: string;
  /** Keep each label's share equal in train and test (up to rounding). Default true. */
  readonly stratify?: boolean;
}

/**
 * At most `count` of `items`, spread evenly over them (item ⌊i·n/count⌋ for i < count): a deterministic subsample
 * that keeps a shuffled list's mix, or a sorted one's range.
 */
export function spread<T>(items: readonly T[], count: number): T[] {
  if (items.length <= count) return [...items];
  return Array.from({ length: count }, (_, i) => items[Math.floor((i * items.length) / count)]!);
}

/**
 * Splits `total` into integer parts proportional to `weights` (largest-remainder method; ties go to the lower
 * index). Exported for partitioning, which cuts each class the same way.
 */
export function apportion(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (!(sum > 0) && total > 0) {
    throw new DataArgumentError(`cannot apportion ${total} by weights that sum to ${sum}`, 'bad_option');
  }
  const exact = weights.map((w) => (total === 0 ? 0 : (w * total) / sum));
  const parts = exact.map(Math.floor);
  let rest = total - parts.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => ({ i, frac: e - Math.floor(e) })).sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (const { i } of order) {
    if (rest <= 0) break;
    parts[i]! += 1;
    rest -= 1;
  }
  return parts;
}

/** Splits `ds` into train and test parts; both keep the shuffled order and the parent's labels. */
export function trainTestSplit(
  ds: LabeledDataset,
  opts: SplitOptions,
): { train: LabeledDataset; test: LabeledDataset } {
  const { testFraction, seed, stratify = true } = opts;
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new DataArgumentError(`testFraction must be in (0, 1), got ${testFraction}`, 'bad_option');
  }
  const n = ds.examples.length;
  if (n < 2) {
    const message = `cannot split ${n} example(s) into train and test; need at least 2`;
    throw new DataArgumentError(message, 'too_few_examples');
  }

  const order = shuffled(
    ds.examples.map((_, i) => i),
    seededUniform(seed),
  );
  const nTest = Math.min(n - 1, Math.max(1, Math.round(n * testFraction)));
  const quota = stratify ? apportion(nTest, labelCounts(ds)) : undefined;
  const test: number[] = [];
  const train: number[] = [];
  for (const i of order) {
    const label = ds.examples[i]!.label;
    const wantTest = quota === undefined ? test.length < nTest : quota[label]! > 0;
    if (wantTest) {
      test.push(i);
      if (quota !== undefined) quota[label]! -= 1;
    } else {
      train.push(i);
    }
  }
  return { train: subset(ds, train, `${ds.name}/train`), test: subset(ds, test, `${ds.name}/test`) };
}
