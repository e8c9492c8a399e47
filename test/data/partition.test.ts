import { describe, expect, it } from 'vitest';
import {
  labelCounts,
  meanLabelSkew,
  partitionByMeta,
  partitionDirichlet,
  partitionIid,
  type LabeledDataset,
} from '../../src/data/index.js';
import { syntheticDataset } from './helpers.js';

/** Texts of all clients' examples, sorted: equal to the parent's iff every example appears exactly once. */
function coverage(parts: Iterable<LabeledDataset>): string[] {
  return [...parts].flatMap((p) => p.examples.map((e) => e.text)).sort();
}

const ds = syntheticDataset([400, 300, 200, 100], ['a', 'b', 'c']);
const allTexts = ds.examples.map((e) => e.text).sort();

describe('partitionIid', () => {
  it('partitionIid – covers every example exactly once in sizes differing by at most one', () => {
    const parts = partitionIid(ds, 7, 'seed');

    expect(coverage(parts)).toEqual(allTexts);
    const sizes = parts.map((p) => p.examples.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(parts.every((p) => p.labels === ds.labels)).toBe(true);
  });

  it('partitionIid – is deterministic in the seed and differs across seeds', () => {
    const a = partitionIid(ds, 4, 's1');
    const b = partitionIid(ds, 4, 's1');
    const c = partitionIid(ds, 4, 's2');

    expect(a.map((p) => p.examples)).toEqual(b.map((p) => p.examples));
    expect(a.map((p) => p.examples)).not.toEqual(c.map((p) => p.examples));
  });

  it('partitionIid – rejects more clients than examples and non-integer client counts', () => {
    const tooFew = expect.objectContaining({ code: 'too_few_examples' });

    expect(() => partitionIid(syntheticDataset([2]), 3, 's')).toThrow(tooFew);
    expect(() => partitionIid(ds, 2.5, 's')).toThrow(expect.objectContaining({ code: 'bad_option' }));
  });
});

describe('partitionDirichlet', () => {
  it('partitionDirichlet – covers every example exactly once', () => {
    const parts = partitionDirichlet(ds, 10, 0.3, 'cover');

    expect(parts).toHaveLength(10);
    expect(coverage(parts)).toEqual(allTexts);
  });

  it('partitionDirichlet – is deterministic in the seed and differs across seeds', () => {
    const a = partitionDirichlet(ds, 5, 0.5, 'x');
    const b = partitionDirichlet(ds, 5, 0.5, 'x');
    const c = partitionDirichlet(ds, 5, 0.5, 'y');

    expect(a.map((p) => p.examples)).toEqual(b.map((p) => p.examples));
    expect(a.map(labelCounts)).not.toEqual(c.map(labelCounts));
  });

  it('partitionDirichlet – label skew grows as alpha falls', () => {
    const alphas = [1000, 10, 1, 0.1, 0.01];
    const skewOf = (alpha: number) =>
      ['s0', 's1', 's2'].reduce((sum, seed) => sum + meanLabelSkew(partitionDirichlet(ds, 10, alpha, seed)), 0) / 3;

    const skews = alphas.map(skewOf);

    for (let i = 1; i < skews.length; i++) expect(skews[i]!).toBeGreaterThan(skews[i - 1]!);
    expect(skews[0]!).toBeLessThan(0.05); // near IID
    expect(skews[skews.length - 1]!).toBeGreaterThan(0.5); // most clients hold one class
    expect(meanLabelSkew(partitionIid(ds, 10, 'iid'))).toBeLessThan(0.1);
  });

  it('partitionDirichlet – tiny alpha still gives every client at least minPerClient examples', () => {
    const parts = partitionDirichlet(ds, 20, 0.001, 'tiny', { minPerClient: 5 });

    expect(Math.min(...parts.map((p) => p.examples.length))).toBeGreaterThanOrEqual(5);
    expect(coverage(parts)).toEqual(allTexts);
  });

  it('partitionDirichlet – rejects a non-positive alpha and an unmeetable minimum', () => {
    expect(() => partitionDirichlet(ds, 4, 0, 's')).toThrow(expect.objectContaining({ code: 'bad_option' }));
    expect(() => partitionDirichlet(ds, 4, 1, 's', { minPerClient: 300 })).toThrow(
      expect.objectContaining({ code: 'too_few_examples' }),
    );
  });
});

describe('partitionByMeta', () => {
  it('partitionByMeta – groups by the meta value in sorted key order, covering every example once', () => {
    const groups = partitionByMeta(ds, 'group');

    expect([...groups.keys()]).toEqual(['a', 'b', 'c']);
    expect(coverage(groups.values())).toEqual(allTexts);
    expect(groups.get('b')!.examples.every((e) => e.meta.group === 'b')).toBe(true);
    expect(groups.get('b')!.name).toBe('synthetic/group=b');
  });

  it('partitionByMeta – an example without the field is a missing_meta error', () => {
    expect(() => partitionByMeta(ds, 'author')).toThrow(expect.objectContaining({ code: 'missing_meta' }));
  });
});

describe('meanLabelSkew', () => {
  it('meanLabelSkew – is 0 for identical mixes and 1 - 1/k for single-class clients', () => {
    const mixed = syntheticDataset([10, 10]);
    const split = [syntheticDataset([10, 0]), syntheticDataset([0, 10])];

    expect(meanLabelSkew([mixed, mixed])).toBe(0);
    expect(meanLabelSkew(split)).toBeCloseTo(0.5, 12);
  });
});
