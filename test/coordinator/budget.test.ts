/**
 * A round's privacy charge (src/coordinator/budget.ts chargeRound): charged once, before the round opens, and a redo
 * after a crash opens only with the clients the recorded charge covers.
 */
import { describe, expect, it } from 'vitest';
import { chargeRound } from '../../src/coordinator/budget.js';
import type { CoordinatorCore } from '../../src/coordinator/core.js';
import { parseRunConfig } from '../../src/coordinator/run-config.js';
import { privacyPlan } from '../../src/coordinator/run-strategy.js';
import type { RunCandidate, RunContext } from '../../src/coordinator/runs.js';
import { InMemoryLedgerStore, PrivacyLedger } from '../../src/privacy/ledger.js';

const BATCH = 10;

/** A client holding `n` examples: its sample-level Poisson rate is BATCH / n. */
function client(id: string, n: number, mode: 'backprop' | 'mezo' = 'backprop'): RunCandidate {
  const training = mode === 'mezo' ? 'TRAINING_MODE_MEZO_DENSE' : 'TRAINING_MODE_BACKPROP';
  return { id, memoryMb: 512, modes: [mode], mode, training, numExamples: n };
}

/** What chargeRound needs of a coordinator: its ledger (in memory) and a run with `privacy`. */
function setup(privacy: Record<string, unknown> | undefined, extra: Record<string, unknown> = {}) {
  const config = parseRunConfig({ local: { steps: 3, batch_size: BATCH }, ...extra, ...(privacy ? { privacy } : {}) });
  const ctx = { id: 'run-1', config, plan: privacyPlan(config) } as RunContext;
  const store = new InMemoryLedgerStore();
  const ledger = new PrivacyLedger({ store });
  if (ctx.plan) ledger.setBudget(ctx.id, { epsilon: 100, delta: 1e-5 });
  const core = { ledger } as unknown as CoordinatorCore;
  let fences = 0;
  const charge = (round: number, sampled: readonly RunCandidate[]) =>
    chargeRound(core, ctx, round, sampled, async () => void fences++).then((open) => open.map((c) => c.id));
  return { charge, entries: () => store.list(ctx.id), fences: () => fences };
}

const SAMPLE = { mode: 'sample', noise_multiplier: 1.1, clip: 1 };
const [a, b, c] = [client('a', 100), client('b', 50), client('c', 20)]; // rates 0.1, 0.2, 0.5

describe('round charge', () => {
  it('round charge – charges the sampled clients\' release once, fenced, and opens with all of them', async () => {
    const { charge, entries, fences } = setup(SAMPLE);
    expect(await charge(1, [a, b])).toEqual(['a', 'b']);
    expect(entries().map((e) => [e.round, e.kind, e.q, e.sigma, e.steps])).toEqual([[1, 'aggregate', 0.2, 1.1, 3]]);
    expect(fences()).toBe(1);
  });

  it('round charge – a redo sampling the same clients opens on the recorded charge without a second', async () => {
    const { charge, entries } = setup(SAMPLE);
    await charge(1, [a, b]);
    expect(await charge(1, [a, b])).toEqual(['a', 'b']);
    expect(entries()).toHaveLength(1);
  });

  it('round charge – a redo sampling a client with less data keeps only the clients the recorded q covers', async () => {
    // Prepare: round 1 charged for {a, b} at q = 0.2; the process died before opening it
    const { charge, entries } = setup(SAMPLE);
    await charge(1, [a, b]);
    // Execute: the restart sees {a, c} live; c's rate 0.5 is more than was charged
    const open = await charge(1, [a, c]);
    // Assert
    expect(open).toEqual(['a']);
    expect(entries().map((e) => [e.round, e.q])).toEqual([[1, 0.2]]);
  });

  it('round charge – a redo no sampled client of which the charge covers opens empty, the charge recorded once', async () => {
    const { charge, entries } = setup(SAMPLE);
    await charge(1, [a, b]);
    expect(await charge(1, [c])).toEqual([]);
    expect(entries()).toHaveLength(1);
  });

  it('round charge – a redo whose sample is no longer all MeZO stays under the recorded kind: the same (q, σ) mechanism', async () => {
    const { charge, entries } = setup(SAMPLE);
    await charge(1, [client('m1', 100, 'mezo'), client('m2', 50, 'mezo')]);
    expect(await charge(1, [client('m1', 100, 'mezo'), a])).toEqual(['m1', 'a']);
    expect(entries().map((e) => [e.round, e.kind, e.q])).toEqual([[1, 'scalar', 0.2]]);
  });

  it('round charge – central DP charges the client sampling rate whoever is sampled, and a redo keeps every client', async () => {
    const { charge, entries } = setup({ mode: 'central', noise_multiplier: 1.1, clip: 1 }, { sample_rate: 0.5 });
    await charge(1, [a, b]);
    expect(await charge(1, [a, c])).toEqual(['a', 'c']);
    expect(entries().map((e) => [e.round, e.q, e.steps])).toEqual([[1, 0.5, 1]]);
  });

  it('round charge – a run without DP charges nothing', async () => {
    const { charge, entries } = setup(undefined);
    expect(await charge(1, [a, c])).toEqual(['a', 'c']);
    expect(entries()).toEqual([]);
  });
});
