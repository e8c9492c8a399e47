import { describe, expect, it } from 'vitest';
import { createStrategy, StrategyConfigError, travellingTensors } from '../../src/aggregation/index.js';
import { globalAdapter } from './fixtures.js';

describe('createStrategy', () => {
  it.each([
    ['ffa', 'ffa'],
    ['exact', 'exact'],
    ['fedavg', 'fedavg'],
  ] as const)('createStrategy – builds the %s strategy', (kind, name) => {
    expect(createStrategy({ kind, alpha: 16, r: 8 }).name).toBe(name);
  });

  it('createStrategy – wraps a server optimizer around the inner strategy', () => {
    expect(createStrategy({ kind: 'ffa', alpha: 16, r: 8, serverOptimizer: { kind: 'fedyogi' } }).name).toBe('ffa+fedyogi');
  });

  it('createStrategy – refuses a server optimizer with exact aggregation', () => {
    expect(() => createStrategy({ kind: 'exact', alpha: 16, r: 8, serverOptimizer: { kind: 'fedadam' } })).toThrow(/cannot be combined with 'exact'/);
  });

  it('createStrategy – rejects unknown kinds and invalid numbers with StrategyConfigError', () => {
    expect(() => createStrategy({ kind: 'mean' as 'ffa', alpha: 16, r: 8 })).toThrow(StrategyConfigError);
    expect(() => createStrategy({ kind: 'ffa', alpha: Number.NaN, r: 8 })).toThrow(/alpha/);
    expect(() => createStrategy({ kind: 'ffa', alpha: 16, r: 0 })).toThrow(/r must be/);
    expect(() => createStrategy({ kind: 'ffa', alpha: 16, r: 8, minClients: 0 })).toThrow(/minClients/);
    expect(() => createStrategy({ kind: 'ffa', alpha: 16, r: 8, weighting: 'dp' as 'equal' })).toThrow(/weighting/);
  });
});

describe('travellingTensors', () => {
  const names = [...globalAdapter().keys()];

  it('travellingTensors – ffa sends lora_B and the head, never lora_A', () => {
    expect(travellingTensors('ffa', names)).toEqual(['h.0.attn.c_attn.lora_B.weight', 'h.1.mlp.c_fc.lora_B.weight', 'score.weight']);
  });

  it('travellingTensors – exact and fedavg send every tensor', () => {
    expect(travellingTensors('exact', names)).toEqual(names);
    expect(travellingTensors('fedavg', names)).toEqual(names);
  });
});
