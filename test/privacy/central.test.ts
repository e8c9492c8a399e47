import { describe, expect, it } from 'vitest';
import type { AggregationStrategy, ClientFailure, ClientUpdate, RoundContext } from '../../src/aggregation/strategy.js';
import { RdpAccountant } from '../../src/privacy/accountant.js';
import { CLIP_INDICATOR_METRIC, DpAdaptiveClipping, DpFixedClipping } from '../../src/privacy/central.js';
import { FfaStrategy } from '../../src/aggregation/linear.js';
import { InvalidPrivacyParameterError } from '../../src/privacy/errors.js';
import { type NoiseSource, gaussianNoise } from '../../src/privacy/gaussian.js';
import { type HostTensor, cloneTensors, globalNorm, hostTensor } from '../../src/tensors/host.js';

/**
 * A test fixture implementing the AggregationStrategy interface (not a mock of a real component): weighted FedAvg of
 * the deltas, applied to the global adapter. It records what it was given so tests can inspect the DP wrapper's input.
 */
class MeanStrategy implements AggregationStrategy {
  readonly name = 'test-mean';
  seen: { results: ClientUpdate[]; failures: ClientFailure[] }[] = [];
  configureRound(): Record<string, number> {
    return { local_epochs: 2 };
  }
  aggregate(ctx: RoundContext, results: readonly ClientUpdate[], failures: readonly ClientFailure[]) {
    this.seen.push({ results: [...results], failures: [...failures] });
    if (results.length === 0) return undefined;
    const total = results.reduce((s, r) => s + r.numExamples, 0);
    const global = cloneTensors(ctx.global);
    for (const r of results) {
      for (const [name, t] of r.delta) {
        const g = global.get(name)!.data;
        for (let i = 0; i < g.length; i++) g[i] = g[i]! + (t.data[i]! * r.numExamples) / total;
      }
    }
    return { global, metrics: { inner_secret: 42 } };
  }
}

function recordingNoise(calls: { n: number; std: number }[], fill = 0): NoiseSource {
  return (n, std) => {
    calls.push({ n, std });
    return new Float64Array(n).fill(fill);
  };
}

function tensors(entries: Record<string, number[]>): Map<string, HostTensor> {
  return new Map(Object.entries(entries).map(([name, v]) => [name, hostTensor([v.length], Float32Array.from(v))]));
}

function client(id: string, delta: Record<string, number[]>, metrics: Record<string, number> = {}): ClientUpdate {
  return { clientId: id, numExamples: 100 + id.length, delta: tensors(delta), metrics };
}

/** B travels; A is frozen (FFA-LoRA). */
const GLOBAL = tensors({ B: [1, 1], A: [5, 5, 5] });
const ctx = (expectedClients: number, global: Map<string, HostTensor> = GLOBAL): RoundContext => ({ round: 1, global, expectedClients });

describe('central – DpFixedClipping', () => {
  it('hands the inner strategy only deltas of norm ≤ C, with equal weights', () => {
    // Prepare
    const inner = new MeanStrategy();
    const dp = new DpFixedClipping(inner, { noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1 }, { accountant: new RdpAccountant(), noise: recordingNoise([]) });
    // Execute
    dp.aggregate(ctx(3), [client('a', { B: [30, 40] }), client('bb', { B: [0.3, 0.4] }), client('ccc', { B: [-2, 0] })], []);
    // Assert
    const { results } = inner.seen[0]!;
    expect(results).toHaveLength(3);
    for (const r of results) {
      expect(globalNorm(r.delta)).toBeLessThanOrEqual(1);
      expect(r.numExamples).toBe(1);
    }
  });

  it('divides the sum by the expected clients m, not the n that replied', () => {
    // Prepare: 2 of m = 4 expected clients reply; no noise so the denominator is visible.
    const dp = new DpFixedClipping(new MeanStrategy(), { noiseMultiplier: 1, clipNorm: 10, samplingRate: 0.1 }, { accountant: new RdpAccountant(), noise: recordingNoise([]) });
    // Execute
    const out = dp.aggregate(ctx(4), [client('a', { B: [1, 0] }), client('b', { B: [0, 3] })], [])!;
    // Assert: B = 1 + Σ/4; A did not travel and is copied.
    expect([...out.global.get('B')!.data]).toEqual([1.25, 1.75]);
    expect([...out.global.get('A')!.data]).toEqual([5, 5, 5]);
  });

  it('adds noise of std σC/m to every travelling coordinate (χ² test at 1e-6) and none to frozen tensors', () => {
    // Prepare: 20 000 travelling coordinates, all deltas zero, so the output minus global is pure noise.
    const size = 20_000;
    const global = new Map([
      ['B', hostTensor([size])],
      ['A', hostTensor([4], Float32Array.of(1, 2, 3, 4))],
    ]);
    const sigma = 1.3;
    const clip = 0.7;
    const m = 5;
    const dp = new DpFixedClipping(new MeanStrategy(), { noiseMultiplier: sigma, clipNorm: clip, samplingRate: 0.05 }, { accountant: new RdpAccountant(), noise: gaussianNoise });
    const zero = { clientId: 'z', numExamples: 1, delta: new Map([['B', hostTensor([size])]]), metrics: {} };
    // Execute
    const out = dp.aggregate({ round: 1, global, expectedClients: m }, [zero, { ...zero, clientId: 'y' }], [])!;
    // Assert: Σ x²/s² ~ χ²(size) with s = σC/m; |z| < 4.892 has false-failure rate 1e-6.
    const s = (sigma * clip) / m;
    const ss = out.global.get('B')!.data.reduce((acc, v) => acc + v * v, 0);
    expect(Math.abs((ss / s ** 2 - size) / Math.sqrt(2 * size))).toBeLessThan(4.892);
    expect(out.metrics.dp_noise_std).toBeCloseTo(s, 12);
    expect([...out.global.get('A')!.data]).toEqual([1, 2, 3, 4]);
  });

  it('steps the accountant once per noisy release', () => {
    // Prepare
    const accountant = new RdpAccountant();
    const dp = new DpFixedClipping(new MeanStrategy(), { noiseMultiplier: 1.1, clipNorm: 1, samplingRate: 0.02 }, { accountant, noise: recordingNoise([]) });
    // Execute
    for (let round = 0; round < 3; round++) dp.aggregate(ctx(2), [client('a', { B: [1, 1] })], []);
    // Assert
    expect(accountant.history).toEqual([{ q: 0.02, sigma: 1.1, steps: 3 }]);
    expect(dp.release).toEqual({ kind: 'aggregate', q: 0.02, sigma: 1.1, steps: 1 });
  });

  it('drops a round with too few results but still counts it (fail-closed)', () => {
    // Prepare
    const accountant = new RdpAccountant();
    const inner = new MeanStrategy();
    const dp = new DpFixedClipping(inner, { noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1, minResults: 3 }, { accountant, noise: recordingNoise([]) });
    // Execute
    const out = dp.aggregate(ctx(4), [client('a', { B: [1, 1] }), client('b', { B: [1, 1] })], [{ clientId: 'c', reason: 'timeout' }]);
    // Assert
    expect(out).toBeUndefined();
    expect(inner.seen).toHaveLength(0);
    expect(accountant.steps).toBe(1);
  });

  it('passes invalid updates to the inner strategy as failures and keeps them out of the sum', () => {
    // Prepare
    const inner = new MeanStrategy();
    const dp = new DpFixedClipping(inner, { noiseMultiplier: 1, clipNorm: 100, samplingRate: 0.1 }, { accountant: new RdpAccountant(), noise: recordingNoise([]) });
    const bad = [
      client('nan', { B: [Number.NaN, 0] }),
      client('shape', { B: [1, 2, 3] }),
      client('unknown', { C: [1] }),
      client('extra', { B: [1, 1], A: [1, 1, 1] }),
      client('indicator', { B: [1, 1] }, { [CLIP_INDICATOR_METRIC]: 0.5 }),
    ];
    // Execute
    const out = dp.aggregate(ctx(2), [client('ok', { B: [2, 4] }), ...bad], [])!;
    // Assert
    expect(inner.seen[0]!.results.map((r) => r.clientId)).toEqual(['ok']);
    expect(inner.seen[0]!.failures.map((f) => f.clientId)).toEqual(['nan', 'shape', 'unknown', 'extra', 'indicator']);
    expect([...out.global.get('B')!.data]).toEqual([2, 3]);
  });

  it("reports only DP-safe metrics, not the inner strategy's", () => {
    const dp = new DpFixedClipping(new MeanStrategy(), { noiseMultiplier: 2, clipNorm: 3, samplingRate: 0.1 }, { accountant: new RdpAccountant(), noise: recordingNoise([]) });
    const out = dp.aggregate(ctx(2), [client('a', { B: [1, 1] })], [])!;
    expect(out.metrics).toEqual({ dp_clip_norm: 3, dp_noise_multiplier: 2, dp_noise_std: 3 });
  });

  it("adds the clip norm to the inner strategy's client instructions", () => {
    const dp = new DpFixedClipping(new MeanStrategy(), { noiseMultiplier: 1, clipNorm: 0.5, samplingRate: 0.1 }, { accountant: new RdpAccountant(), noise: gaussianNoise });
    expect(dp.configureRound(1)).toEqual({ local_epochs: 2, clip_norm: 0.5 });
    expect(dp.name).toBe('dp-fixed-clipping(test-mean)');
  });

  it('rejects invalid parameters at construction', () => {
    const deps = { accountant: new RdpAccountant(), noise: gaussianNoise };
    const inner = new MeanStrategy();
    expect(() => new DpFixedClipping(inner, { noiseMultiplier: 0, clipNorm: 1, samplingRate: 0.1 }, deps)).toThrow(/noiseMultiplier/);
    expect(() => new DpFixedClipping(inner, { noiseMultiplier: 1, clipNorm: -1, samplingRate: 0.1 }, deps)).toThrow(/clip norm/);
    expect(() => new DpFixedClipping(inner, { noiseMultiplier: 1, clipNorm: 1, samplingRate: 0 }, deps)).toThrow(/samplingRate/);
    expect(() => new DpFixedClipping(inner, { noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1, minResults: 0 }, deps)).toThrow(InvalidPrivacyParameterError);
    const dp = new DpFixedClipping(inner, { noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1 }, deps);
    expect(() => dp.aggregate(ctx(0), [], [])).toThrow(/expectedClients/);
  });
});

describe('central – around the real FFA-LoRA strategy', () => {
  it('adds Σ clip(u_k)/m to lora_B and the head and leaves the frozen lora_A alone', () => {
    // Prepare: one adapted module (A [2, 3] frozen, B [4, 2]) and a head [2, 4]; two clients, m = 4, no noise.
    const A = 'h.0.attn.c_attn.lora_A.weight';
    const B = 'h.0.attn.c_attn.lora_B.weight';
    const global = new Map([
      [A, hostTensor([2, 3], Float32Array.of(1, 2, 3, 4, 5, 6))],
      [B, hostTensor([4, 2])],
      ['score.weight', hostTensor([2, 4])],
    ]);
    const delta = (b: number, s: number) =>
      new Map([
        [B, hostTensor([4, 2], new Float32Array(8).fill(b))],
        ['score.weight', hostTensor([2, 4], new Float32Array(8).fill(s))],
      ]);
    const results: ClientUpdate[] = [
      { clientId: 'big', numExamples: 900, delta: delta(3, 4), metrics: {} }, // norm √(8·9 + 8·16) = √200, clipped to 1
      { clientId: 'small', numExamples: 10, delta: delta(0.1, 0), metrics: {} }, // norm √0.08, kept
    ];
    const dp = new DpFixedClipping(new FfaStrategy(), { noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.1 }, { accountant: new RdpAccountant(), noise: recordingNoise([]) });
    // Execute
    const out = dp.aggregate({ round: 3, global, expectedClients: 4 }, results, [])!;
    // Assert: big contributes 3/√200 to B and 4/√200 to the head; small contributes 0.1 to B.
    const k = 1 / Math.sqrt(200);
    out.global.get(B)!.data.forEach((v) => expect(v).toBeCloseTo((3 * k + 0.1) / 4, 6));
    out.global.get('score.weight')!.data.forEach((v) => expect(v).toBeCloseTo((4 * k) / 4, 6));
    expect([...out.global.get(A)!.data]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('writes the noisy adapter into the memory the round context allocates, and leaves the old global as it was', () => {
    // Prepare
    const A = 'h.0.attn.c_attn.lora_A.weight';
    const B = 'h.0.attn.c_attn.lora_B.weight';
    const global = new Map([
      [A, hostTensor([2, 3], Float32Array.of(1, 2, 3, 4, 5, 6))],
      [B, hostTensor([4, 2], new Float32Array(8).fill(0.5))],
    ]);
    const before = [...global.values()].map((t) => [...t.data]);
    const given: ArrayBuffer[] = [];
    const allocate = (bytes: number): ArrayBuffer => given[given.push(new ArrayBuffer(bytes)) - 1]!;
    const results: ClientUpdate[] = [{ clientId: 'c', numExamples: 1, delta: new Map([[B, hostTensor([4, 2], new Float32Array(8).fill(0.1))]]), metrics: {} }];
    const dp = new DpFixedClipping(new FfaStrategy(), { noiseMultiplier: 1, clipNorm: 10, samplingRate: 0.1 }, { accountant: new RdpAccountant(), noise: recordingNoise([], 0.2) });
    // Execute
    const out = dp.aggregate({ round: 1, global, expectedClients: 2, allocate }, results, [])!;
    // Assert: one buffer, both tensors in it (so the coordinator stores it as it lies); B = 0.5 + (0.1 + 0.2)/2.
    expect(given).toHaveLength(1);
    expect([...out.global.values()].map((t) => t.data.buffer === given[0])).toEqual([true, true]);
    out.global.get(B)!.data.forEach((v) => expect(v).toBeCloseTo(0.65, 6));
    expect([...out.global.get(A)!.data]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...global.values()].map((t) => [...t.data])).toEqual(before);
  });
});

describe('central – DpAdaptiveClipping', () => {
  it('moves C toward the target quantile of update norms, from below and from above', () => {
    // Prepare: 100 clients with norms 0.1, 0.2, ..., 10 (median ≈ 5); no noise so the trajectory is deterministic.
    const clients = Array.from({ length: 100 }, (_, i) => client(`c${i}`, { B: [(i + 1) / 10, 0] }));
    for (const start of [0.5, 50]) {
      const dp = new DpAdaptiveClipping(
        new MeanStrategy(),
        { noiseMultiplier: 1, initialClipNorm: start, samplingRate: 0.1, expectedClients: 100 },
        { accountant: new RdpAccountant(), noise: recordingNoise([]) },
      );
      // Execute
      for (let round = 0; round < 150; round++) dp.aggregate(ctx(100), clients, []);
      // Assert
      expect(dp.clipNorm).toBeGreaterThan(4.5);
      expect(dp.clipNorm).toBeLessThan(5.6);
    }
  });

  it('splits the noise: z_Δ = (z⁻² − (2σ_b)⁻²)^(−½) on updates, σ_b on the count, accountant stepped with z', () => {
    // Prepare: m = 40 → σ_b = 2; z = 1 → z_Δ = (1 − 1/16)^(−½).
    const calls: { n: number; std: number }[] = [];
    const accountant = new RdpAccountant();
    const dp = new DpAdaptiveClipping(new MeanStrategy(), { noiseMultiplier: 1, initialClipNorm: 2, samplingRate: 0.1, expectedClients: 40 }, { accountant, noise: recordingNoise(calls) });
    // Execute
    dp.aggregate(ctx(40), [client('a', { B: [1, 1] })], []);
    // Assert
    const zDelta = (1 - 1 / 16) ** -0.5;
    expect(dp.updateNoiseMultiplier).toBeCloseTo(zDelta, 12);
    expect(calls).toEqual([
      { n: 1, std: 2 },
      { n: 2, std: zDelta * 2 },
    ]);
    expect(accountant.history).toEqual([{ q: 0.1, sigma: 1, steps: 1 }]);
  });

  it("uses the client's reported clip indicator when it clipped before sending", () => {
    // Prepare: every client reports it had to clip (b_k = 0), though its update now has norm ≤ C.
    const dp = new DpAdaptiveClipping(new MeanStrategy(), { noiseMultiplier: 1, initialClipNorm: 1, samplingRate: 0.1, expectedClients: 20 }, { accountant: new RdpAccountant(), noise: recordingNoise([]) });
    const clipped = Array.from({ length: 20 }, (_, i) => client(`c${i}`, { B: [0.6, 0.8] }, { [CLIP_INDICATOR_METRIC]: 0 }));
    // Execute
    const out = dp.aggregate(ctx(20), clipped, [])!;
    // Assert: b̃ = 0, so C ← C·exp(−0.2·(0 − 0.5)).
    expect(out.metrics.dp_unclipped_fraction).toBe(0);
    expect(dp.clipNorm).toBeCloseTo(Math.exp(0.1), 12);
    expect(dp.configureRound(2)).toEqual({ local_epochs: 2, clip_norm: dp.clipNorm });
  });

  it('keeps C and counts the release when a round is dropped', () => {
    const accountant = new RdpAccountant();
    const dp = new DpAdaptiveClipping(new MeanStrategy(), { noiseMultiplier: 1, initialClipNorm: 1, samplingRate: 0.1, expectedClients: 20, minResults: 5 }, { accountant, noise: recordingNoise([]) });
    expect(dp.aggregate(ctx(20), [client('a', { B: [5, 5] })], [])).toBeUndefined();
    expect(dp.clipNorm).toBe(1);
    expect(accountant.steps).toBe(1);
  });

  it('rejects a clip-count noise too small to pay for its release', () => {
    const deps = { accountant: new RdpAccountant(), noise: gaussianNoise };
    // Default σ_b = m/20 = 0.5 with z = 1: needs σ_b > z/2 = 0.5.
    expect(() => new DpAdaptiveClipping(new MeanStrategy(), { noiseMultiplier: 1, initialClipNorm: 1, samplingRate: 0.1, expectedClients: 10 }, deps)).toThrow(/σ_b > z\/2/);
    expect(() => new DpAdaptiveClipping(new MeanStrategy(), { noiseMultiplier: 1, initialClipNorm: 1, samplingRate: 0.1, expectedClients: 100, targetQuantile: 1 }, deps)).toThrow(/targetQuantile/);
    expect(() => new DpAdaptiveClipping(new MeanStrategy(), { noiseMultiplier: 1, initialClipNorm: 1, samplingRate: 0.1, expectedClients: 100, clipLearningRate: 0 }, deps)).toThrow(/clipLearningRate/);
  });
});
