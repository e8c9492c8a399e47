import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/coordinator/errors.js';
import { curveRounds, curveRunConfig, CURVE_MODES, MEZO_ROUND_FACTOR } from '../../src/bench/curves.js';

describe('learning-curves benchmark settings', () => {
  it('bench curves – MeZO runs three times the rounds of backprop and ESSA (issue #5 compares at equal rounds × 3)', () => {
    expect(MEZO_ROUND_FACTOR).toBe(3);
    expect(curveRounds('mezo-seeds', 6)).toBe(18);
    for (const mode of CURVE_MODES.filter((m) => m !== 'mezo-seeds')) expect(curveRounds(mode, 6)).toBe(6);
  });

  it('bench curves – each mode trains in its own mode with the demo run around it, MeZO uploading seeds', () => {
    const mezo = curveRunConfig('mezo-seeds', 18);
    expect(mezo.local).toMatchObject({ mode: 'mezo', mezoUpload: 'seeds', seedPoolK: 4096 });
    expect(mezo.rounds).toBe(18);
    expect(curveRunConfig('essa', 6).local.mode).toBe('essa');
    expect(curveRunConfig('backprop', 6).local.mode).toBe('backprop');
    // The adapter and sequence length BENCHMARKS.md's curves were measured with, whatever the demo uses now.
    expect(mezo.seqLen).toBe(64);
    expect(mezo.lora.targets).toEqual(['attn.c_attn', 'attn.c_proj']);
    // The same run otherwise: the comparison is between local methods only.
    expect({ ...mezo, local: null, rounds: 0 }).toEqual({ ...curveRunConfig('backprop', 6), local: null, rounds: 0 });
  });

  it('bench curves – overrides replace a mode\'s settings and go through run-config validation', () => {
    const tuned = curveRunConfig('mezo-seeds', 18, { local: { mezo_lr: 1e-3, steps: 5 }, server_optimizer: { kind: 'fedyogi' } });
    expect(tuned.local).toMatchObject({ mezoLr: 1e-3, steps: 5, mode: 'mezo', mezoUpload: 'seeds' });
    expect(tuned.serverOptimizer.kind).toBe('fedyogi');
    expect(() => curveRunConfig('essa', 6, { local: { essa_sigma: 0 } })).toThrow(ConfigError);
    expect(() => curveRunConfig('essa', 6, { local: { essa_sigmaa: 0.1 } })).toThrow(/unknown key local\.essa_sigmaa/);
  });
});
