/** Pure parts of the coordinator: privacy plans and releases, strategy state across restarts, payload layouts. */
import { describe, expect, it } from 'vitest';
import { layoutBytes, packTensors, runLayout, unpackTensors } from '../../src/coordinator/layout.js';
import { parseRunConfig } from '../../src/coordinator/run-config.js';
import { buildStrategy, currentStrategyState, privacyInstructions, privacyPlan, roundRelease, strategyDocument } from '../../src/coordinator/run-strategy.js';
import { parseTaskId, taskId } from '../../src/coordinator/tasks.js';
import { page } from '../../src/coordinator/views.js';
import { epsilonOf } from '../../src/privacy/rdp.js';
import { TEST_MODEL } from './helpers.js';

describe('run strategy', () => {
  it('privacy plan – "auto" σ makes the planned central rounds fit the budget at the client sampling rate', () => {
    const config = parseRunConfig({ rounds: 20, sample_rate: 0.5, privacy: { mode: 'central', epsilon: 3, delta: 1e-5 } });
    const plan = privacyPlan(config)!;
    const eps = epsilonOf({ q: 0.5, noiseMultiplier: plan.sigma, steps: 20, delta: 1e-5 }).epsilon;
    expect(eps).toBeLessThanOrEqual(3);
    expect(eps).toBeGreaterThan(2.9);
    expect(roundRelease(config, plan, [])).toEqual({ kind: 'aggregate', q: 0.5, sigma: plan.sigma, steps: 1 });
  });

  it('privacy plan – sample-level DP needs an explicit σ and accounts the largest client sampling rate', () => {
    expect(() => privacyPlan(parseRunConfig({ privacy: { mode: 'sample' } }))).toThrow(/noise_multiplier must be set/);
    const config = parseRunConfig({ local: { steps: 7, batch_size: 10 }, privacy: { mode: 'sample', noise_multiplier: 1.1, clip: 2 } });
    const plan = privacyPlan(config)!;
    expect(roundRelease(config, plan, [100, 40, 1000])).toEqual({ kind: 'aggregate', q: 0.25, sigma: 1.1, steps: 7 });
    // All-MeZO rounds: the same mechanism, each step a 1-D DPZero release of the projected gradient.
    expect(roundRelease(config, plan, [100, 40, 1000], true)).toEqual({ kind: 'scalar', q: 0.25, sigma: 1.1, steps: 7 });
    expect(privacyInstructions(config, plan, 0, 40).sampleDp).toEqual({ clipNorm: 2, noiseMultiplier: 1.1, samplingRate: 0.25, expectedBatchSize: 10 });
    const local = parseRunConfig({ privacy: { mode: 'local', noise_multiplier: 0.8, clip: 0.5 } });
    expect(privacyInstructions(local, privacyPlan(local), 0, 1)).toMatchObject({ clipNorm: 0.5, localNoiseMultiplier: 0.8 });
  });

  it('strategy state – a round saved but not closed before a crash is aggregated again from the state before it', () => {
    const doc = strategyDocument(4, { clipNorm: 1 }, { clipNorm: 0.8 });
    expect(currentStrategyState(doc, (r) => r < 4)).toEqual({ clipNorm: 1 }); // re-aggregating round 4
    expect(currentStrategyState(doc, (r) => r < 5)).toEqual({ clipNorm: 0.8 }); // round 5 starts from round 4's result
    expect(currentStrategyState(undefined, () => true)).toEqual({});
  });

  it('strategy state – server optimizer moments survive export and rebuild', () => {
    const config = parseRunConfig({ server_optimizer: { kind: 'fedadam', lr: 0.1 } });
    const built = buildStrategy(config, undefined, {}, 2);
    const global = new Map([['h.0.attn.c_attn.lora_B.weight', { shape: [2, 2], data: new Float32Array(4) }]]);
    const update = (v: number) => ({ clientId: `c${v}`, numExamples: 1, metrics: {}, delta: new Map([['h.0.attn.c_attn.lora_B.weight', { shape: [2, 2], data: new Float32Array(4).fill(v) }]]) });
    built.strategy.aggregate({ round: 1, global, expectedClients: 2 }, [update(1), update(3)], []);
    const saved = JSON.parse(JSON.stringify(built.exportState()));
    const rebuilt = buildStrategy(config, undefined, saved, 2);
    expect(rebuilt.exportState()).toEqual(saved);
  });
});

describe('layout and ids', () => {
  it('layout – payload bytes round-trip in layout order, and ffa uploads only lora_B and the head', () => {
    const layout = runLayout(TEST_MODEL, parseRunConfig({ lora: { r: 2 }, labels: ['a', 'b', 'c'] }));
    expect([...layout.upload.keys()].every((n) => !n.includes('lora_A'))).toBe(true);
    expect(layout.upload.get('score.weight')).toEqual([3, TEST_MODEL.nEmbd]);
    const tensors = new Map([...layout.upload].map(([n, shape], k) => [n, { shape: [...shape], data: Float32Array.from({ length: shape[0]! * shape[1]! }, (_, i) => k + i / 8) }] as const));
    const bytes = packTensors(tensors, layout.upload);
    expect(bytes.length).toBe(layoutBytes(layout.upload));
    expect(unpackTensors(bytes, layout.upload)).toEqual(tensors);
    expect(() => unpackTensors(bytes.subarray(4), layout.upload)).toThrow(/bytes/);
  });

  it('ids – task ids round-trip and pages continue where the last ended', () => {
    expect(parseTaskId(taskId('run_1', 12, 'c_ab'))).toEqual({ runId: 'run_1', round: 12, clientId: 'c_ab' });
    expect(() => parseTaskId('nonsense')).toThrow(/not a task/);
    const items = Array.from({ length: 5 }, (_, i) => i);
    const first = page(items, 2, '');
    expect(first).toEqual({ items: [0, 1], next: '2' });
    expect(page(items, 2, first.next)).toEqual({ items: [2, 3], next: '4' });
    expect(page(items, 2, '4')).toEqual({ items: [4], next: '' });
    expect(() => page(items, 2, 'x')).toThrow(/page_token/);
  });
});
