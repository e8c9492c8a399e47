import { describe, expect, it } from 'vitest';
import { constantLr, cosineLr, lrAt } from '../../src/train/schedule.js';

describe('learning-rate schedules', () => {
  it('schedule – constant is the same at every step', () => {
    const s = constantLr(0.01);
    expect([0, 1, 100].map((t) => lrAt(s, t))).toEqual([0.01, 0.01, 0.01]);
  });

  it('schedule – cosine warms up linearly, peaks, decays to minLr and stays there', () => {
    const s = cosineLr(1, 110, { warmupSteps: 10, minLr: 0.1 });
    expect(lrAt(s, 0)).toBeCloseTo(0.1, 12);
    expect(lrAt(s, 4)).toBeCloseTo(0.5, 12);
    expect(lrAt(s, 9)).toBeCloseTo(1, 12);
    expect(lrAt(s, 10)).toBeCloseTo(1, 12);
    expect(lrAt(s, 60)).toBeCloseTo(0.55, 12); // halfway: minLr + (lr − minLr)/2
    expect(lrAt(s, 110)).toBeCloseTo(0.1, 12);
    expect(lrAt(s, 500)).toBeCloseTo(0.1, 12);
    for (let t = 10; t < 110; t++) expect(lrAt(s, t + 1)).toBeLessThanOrEqual(lrAt(s, t));
  });

  it('schedule – cosine defaults to 5% warmup and lr/10 floor', () => {
    const s = cosineLr(2e-3, 200);
    expect(s).toMatchObject({ kind: 'cosine', warmupSteps: 10, minLr: 2e-4 });
  });

  it('schedule – rejects a warmup longer than the run', () => {
    expect(() => cosineLr(1, 10, { warmupSteps: 11 })).toThrow(/warmup/);
  });
});
