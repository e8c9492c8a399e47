import { describe, expect, it } from 'vitest';
import { labelCounts, trainTestSplit } from '../../src/data/index.js';
import { apportion, spread } from '../../src/data/split.js';
import { syntheticDataset } from './helpers.js';

describe('trainTestSplit', () => {
  it('trainTestSplit – stratified split keeps each label share and covers every example once', () => {
    const ds = syntheticDataset([300, 100]);

    const { train, test } = trainTestSplit(ds, { testFraction: 0.2, seed: 'a' });

    expect(labelCounts(test)).toEqual([60, 20]);
    expect(labelCounts(train)).toEqual([240, 80]);
    const all = [...train.examples, ...test.examples].map((e) => e.text).sort();
    expect(all).toEqual(ds.examples.map((e) => e.text).sort());
    expect(test.labels).toBe(ds.labels);
  });

  it('trainTestSplit – same seed gives the same split, another seed a different one', () => {
    const ds = syntheticDataset([50, 50]);

    const a = trainTestSplit(ds, { testFraction: 0.3, seed: 'x' });
    const b = trainTestSplit(ds, { testFraction: 0.3, seed: 'x' });
    const c = trainTestSplit(ds, { testFraction: 0.3, seed: 'y' });

    expect(a.test.examples).toEqual(b.test.examples);
    expect(a.test.examples).not.toEqual(c.test.examples);
  });

  it('trainTestSplit – unstratified split takes round(n · fraction) examples', () => {
    const ds = syntheticDataset([7, 3]);

    const { train, test } = trainTestSplit(ds, { testFraction: 0.25, seed: 'u', stratify: false });

    expect([train.examples.length, test.examples.length]).toEqual([7, 3]);
  });

  it('trainTestSplit – rejects fractions outside (0, 1) and data sets too small to split', () => {
    const ds = syntheticDataset([5]);

    const badOption = expect.objectContaining({ code: 'bad_option' });

    expect(() => trainTestSplit(ds, { testFraction: 1, seed: 's' })).toThrow(badOption);
    expect(() => trainTestSplit(syntheticDataset([1]), { testFraction: 0.5, seed: 's' })).toThrow(
      expect.objectContaining({ code: 'too_few_examples' }),
    );
  });
});

describe('apportion', () => {
  it('apportion – splits a total proportionally with largest remainders, summing exactly', () => {
    expect(apportion(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportion(7, [0.5, 0.25, 0.25])).toEqual([3, 2, 2]); // exact 3.5, 1.75, 1.75
    expect(apportion(6, [3, 0, 1])).toEqual([5, 0, 1]); // exact 4.5, 0, 1.5: tie goes to the lower index
    expect(() => apportion(5, [0, 0])).toThrow(expect.objectContaining({ code: 'bad_option' }));
  });
});

describe('spread', () => {
  it('keeps at most count items, evenly spaced from the first, and copies a list that is short enough', () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    expect(spread(items, 4)).toEqual([0, 2, 5, 7]);
    expect(spread(items, 5)).toEqual([0, 2, 4, 6, 8]);
    const short = [1, 2, 3];
    const all = spread(short, 3);
    expect(all).toEqual(short);
    expect(all).not.toBe(short);
    // ⌊i·n/count⌋ computed in integers: the float stride (695/500)·300 lands just below 417
    expect(spread(Array.from({ length: 695 }, (_, i) => i), 500)[300]).toBe(417);
  });
});
