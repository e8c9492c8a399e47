/** The client's resolution of a ForgetSelector on its local data (unlearn-task.ts). */
import { describe, expect, it } from 'vitest';
import { resolveSelector, unlearningConfigOf } from '../../src/client/unlearn-task.js';
import { DEFAULT_UNLEARNING_REQUEST } from '../../src/unlearning/request.js';
import { TaskError } from '../../src/client/errors.js';
import type { LabeledDataset } from '../../src/data/dataset.js';
import type { ForgetSelector, Task } from '../../src/wire/messages.js';

const DATA: LabeledDataset = {
  labels: ['ham', 'spam'],
  examples: [
    { text: 'meeting at noon', label: 0, meta: { group: 'work', id: 'm1' } },
    { text: 'WIN a prize now', label: 1, meta: { group: 'promo', id: 'm2' } },
    { text: 'lunch tomorrow?', label: 0, meta: { group: 'friends' } },
    { text: 'free prize inside', label: 1, meta: { group: 'promo' } },
  ],
} as unknown as LabeledDataset;

const sel = (s: Partial<ForgetSelector>): ForgetSelector => ({ exampleIds: [], label: '', query: '', group: '', match: '', ...s });

describe('resolveSelector', () => {
  it('selector – label, group, regex match, query and example ids each pick their rows, and the rest is the generic slice', () => {
    expect(resolveSelector(DATA, sel({ label: 'spam' }))).toEqual({ forget: [1, 3], generic: [0, 2] });
    expect(resolveSelector(DATA, sel({ group: 'friends' }))).toEqual({ forget: [2], generic: [0, 1, 3] });
    expect(resolveSelector(DATA, sel({ match: '^(?:WIN|free)' })).forget).toEqual([1, 3]);
    expect(resolveSelector(DATA, sel({ query: 'noon' })).forget).toEqual([0]);
    expect(resolveSelector(DATA, sel({ exampleIds: ['m2', '2'] })).forget).toEqual([1, 2]); // meta.id, else the row index
  });

  it('selector – fields combine with AND', () => {
    expect(resolveSelector(DATA, sel({ group: 'promo', match: 'free' })).forget).toEqual([3]);
  });

  it('selector – an empty selection is a data TaskError the client reports (the coordinator fails the request)', () => {
    const err = (() => {
      try {
        resolveSelector(DATA, sel({ group: 'nobody' }));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).code).toBe('data');
    expect((err as Error).message).toMatch(/empty selection/);
  });
});

describe('unlearningConfigOf', () => {
  const task = {
    taskId: 't1',
    training: null,
    unlearning: { requestId: 'r1', index: 1, previousAdapterSha256: Buffer.alloc(0), priorAdaptersSha256: [], orthogonalityLambda: 0, forget: sel({ group: 'promo' }), targetPolicy: '', detectorLayers: [] },
  } as unknown as Task;

  it('disclosure – full keeps the banks and the n-gram neighbours, no-bank drops every bank (Gaussian n-gram block), layers drops the n-gram block too', () => {
    const d = DEFAULT_UNLEARNING_REQUEST.detector;
    expect(d.bank).toBe(true);
    expect(d.input).not.toBeNull();
    expect(unlearningConfigOf(task).detector).toEqual(d);
    expect(unlearningConfigOf(task, 'no-bank').detector).toEqual({ ...d, bank: false, neighbours: 0 });
    expect(unlearningConfigOf(task, 'layers').detector).toEqual({ ...d, bank: false, neighbours: 0, input: null });
  });
});
