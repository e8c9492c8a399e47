import { describe, expect, it } from 'vitest';
import { dataSpecFromFlags, detectorDisclosureFromFlags } from '../../../src/cli/commands/client.js';
import { parseModes } from '../../../src/client/enroll.js';
import { DEFAULT_BUILTIN_SPLIT, DEFAULT_PARTITION_SEED } from '../../../src/client/local-data.js';

describe('lethe client flags', () => {
  it('client – --data builtin:spam with --partition I/N --alpha A names a seeded Dirichlet share of the train split', () => {
    const spec = dataSpecFromFlags({ data: 'builtin:spam', partition: '2/8', alpha: '0.5' });
    expect(spec).toEqual({
      source: 'builtin:spam',
      partition: { index: 2, count: 8, alpha: 0.5, seed: DEFAULT_PARTITION_SEED },
      split: DEFAULT_BUILTIN_SPLIT,
    });
  });

  it('client – a data file is used whole unless a split seed is given', () => {
    expect(dataSpecFromFlags({ data: 'mails.jsonl' })).toEqual({ source: 'mails.jsonl' });
  });

  it('client – a bad partition or a missing --data is a usage error', () => {
    expect(() => dataSpecFromFlags({})).toThrow(/--data/);
    expect(() => dataSpecFromFlags({ data: 'builtin:spam', partition: '8/8' })).toThrow(/--partition/);
  });

  it('client – --modes maps names to wire modes and rejects unknown ones', () => {
    expect(parseModes('backprop, mezo,essa')).toEqual(['TRAINING_MODE_BACKPROP', 'TRAINING_MODE_MEZO_DENSE', 'TRAINING_MODE_ESSA']);
    expect(() => parseModes('backprop,sgd')).toThrow(/unknown mode "sgd"/);
  });

  it('client – --detector-disclosure defaults to full and rejects values it does not know', () => {
    expect(detectorDisclosureFromFlags({})).toBe('full');
    expect(detectorDisclosureFromFlags({ 'detector-disclosure': 'layers' })).toBe('layers');
    expect(() => detectorDisclosureFromFlags({ 'detector-disclosure': 'none' })).toThrow(/--detector-disclosure must be one of full, no-bank, layers, got "none"/);
  });
});
