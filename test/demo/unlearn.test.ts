/** `lethe demo --unlearn`: who holds what, and the before/after table. */
import { describe, expect, it } from 'vitest';
import { spamAssassin, trainTestSplit, type Example } from '../../src/data/index.js';
import { DEFAULT_COORDINATOR_CONFIG } from '../../src/coordinator/config.js';
import { DEMO_RUN_SEED } from '../../src/demo/config.js';
import { DEFAULT_UNLEARN_SCENARIO, everyLabelEverywhere, formatOutcome, scenarioData } from '../../src/demo/unlearn.js';

describe('demo --unlearn', () => {
  it('unlearn – client 0 alone holds the whole forget group, first in its file; nobody trains on the eval split', () => {
    // Act
    const d = scenarioData({ clients: 4, alpha: 0.5 }, DEFAULT_UNLEARN_SCENARIO);

    // Assert
    const group = DEFAULT_UNLEARN_SCENARIO.forgetGroup;
    const inGroup = (e: Example): boolean => e.meta['group'] === group;
    expect(d.forgetRows).toBe(d.forget.length);
    expect(d.clients[0]!.examples.slice(0, d.forgetRows)).toEqual(d.forget);
    expect(d.clients[0]!.examples.slice(d.forgetRows).some(inGroup)).toBe(false);
    for (const c of d.clients.slice(1)) expect(c.examples.some(inGroup)).toBe(false);
    const { test } = trainTestSplit(spamAssassin(), { testFraction: DEFAULT_COORDINATOR_CONFIG.evalTestFraction, seed: DEMO_RUN_SEED });
    const key = (e: Example): string => `${e.meta['group']}/${e.meta['id']}`;
    const evalMails = new Set(test.examples.map(key));
    for (const c of d.clients) expect(c.examples.some((e) => evalMails.has(key(e)))).toBe(false);
    expect(d.heldOut.every(inGroup) && d.heldOut.every((e) => evalMails.has(key(e)))).toBe(true);
    expect(d.retain.some(inGroup)).toBe(false);
    for (const c of d.clients) expect(new Set(c.examples.map((e) => e.label)).size).toBe(2); // each file infers the run's labels
  });

  it('unlearn – a share missing a label gets one from the share holding most of it', () => {
    // Arrange
    const ex = (label: number, i: number): Example => ({ text: `${label}-${i}`, label, meta: {} });
    const shares = [[ex(0, 1), ex(0, 2)], [ex(1, 1), ex(1, 2), ex(0, 3)], [ex(1, 3)]];

    // Act
    everyLabelEverywhere(shares, 2);

    // Assert
    expect(shares.map((s) => new Set(s.map((e) => e.label)).size)).toEqual([2, 2, 2]);
    expect(shares.flat()).toHaveLength(6); // moved, not copied
  });

  it('unlearn – the table shows accuracy before and after and the mean gate per set', () => {
    const score = (accuracy: number, meanGate: number) => ({ n: 10, accuracy, meanGate });
    const text = formatOutcome({
      forgetGroup: 'hard-ham-1',
      request: { id: 'unl_1', state: 'UNLEARNING_STATE_COMPLETED', message: '', seconds: 3, metrics: {} },
      chance: 0.5,
      before: { forget: score(0.9, 0), heldOut: score(0.8, 0), retain: score(0.85, 0) },
      after: { forget: score(0.5, 1), heldOut: score(0.6, 0.4), retain: score(0.84, 0.01) },
    });
    expect(text).toMatch(/forgotten \(hard-ham-1, train\)\s+10\s+90\.0%\s+50\.0%\s+1\.00/);
    expect(text).toMatch(/retained \(other groups, test\)\s+10\s+85\.0%\s+84\.0%\s+0\.01/);
  });
});
