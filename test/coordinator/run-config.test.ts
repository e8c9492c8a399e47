import { describe, expect, it } from 'vitest';
import { parseRunConfig, runConfigToJson } from '../../src/coordinator/run-config.js';
import { ConfigError } from '../../src/coordinator/errors.js';

describe('run config', () => {
  it('run config – fills every default from an empty object', () => {
    const c = parseRunConfig({});
    expect(c.aggregation).toBe('ffa');
    expect(c.sampling).toEqual({ kind: 'poisson', q: 1 });
    expect(c.local.mode).toBe('backprop');
    expect(c.lora).toEqual({ r: 8, alpha: 16, targets: ['attn.c_attn', 'attn.c_proj'], seed: 'lethe' });
    expect(c.privacy).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('run config – round-trips through its JSON form', () => {
    const c = parseRunConfig({
      rounds: 3,
      clients_per_round: 5,
      local: { mode: 'mezo', mezo_upload: 'seeds', essa_lr: 0.02, essa_fitness: 'accuracy', essa_eval_examples: 32 },
      modes: { default: 'backprop', low_memory: 'mezo', low_memory_below_mb: 512 },
      privacy: { mode: 'local', epsilon: 2, noise_multiplier: 1.1 },
    });
    expect(parseRunConfig(runConfigToJson(c))).toEqual(c);
  });

  it('run config – names the field of a wrong type, an unknown key and an out-of-range value', () => {
    expect(() => parseRunConfig({ rounds: 'ten' })).toThrow(/rounds must be a finite number/);
    expect(() => parseRunConfig({ local: { stepz: 3 } })).toThrow(/unknown key local\.stepz/);
    expect(() => parseRunConfig({ sample_rate: 1.5 })).toThrow(/sample_rate must be ≤ 1/);
    expect(() => parseRunConfig({ lora: { targets: ['attn.q'] } })).toThrow(/lora\.targets: unknown module "attn\.q"/);
    expect(() => parseRunConfig({ privacy: { noise_multiplier: -1 } })).toThrow(/privacy\.noise_multiplier/);
    expect(() => parseRunConfig([])).toThrow(ConfigError);
  });

  it('run config – refuses combinations the privacy analysis does not cover', () => {
    expect(() => parseRunConfig({ aggregation: 'exact', privacy: {} })).toThrow(/privacy needs aggregation/);
    expect(() => parseRunConfig({ clients_per_round: 4, privacy: { mode: 'central' } })).toThrow(/Poisson/);
    expect(() => parseRunConfig({ clients_per_round: 4, sample_rate: 0.5 })).toThrow(/either sample_rate/);
    expect(() => parseRunConfig({ modes: { low_memory: 'essa' }, privacy: { mode: 'sample', noise_multiplier: 1 } })).toThrow(/privacy cannot be combined with ESSA/);
  });

  it('run config – refuses a server optimizer with exact aggregation, which re-factors the adapter every round', () => {
    expect(() => parseRunConfig({ aggregation: 'exact', server_optimizer: { kind: 'fedadam' } })).toThrow(/server_optimizer fedadam \(lr 0\.01\) cannot be combined with aggregation "exact"/);
    expect(() => parseRunConfig({ aggregation: 'exact', server_optimizer: { kind: 'fedavg', lr: 0.5 } })).toThrow(/cannot be combined with aggregation "exact"/);
    expect(parseRunConfig({ aggregation: 'exact' }).serverOptimizer).toEqual({ kind: 'fedavg', lr: 1 });
    expect(parseRunConfig({ aggregation: 'ffa', server_optimizer: { kind: 'fedadam' } }).serverOptimizer.kind).toBe('fedadam');
  });
});
