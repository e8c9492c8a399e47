import { describe, expect, it } from 'vitest';
import { BudgetExceededError, NoBudgetError } from '../../src/privacy/errors.js';
import { InMemoryLedgerStore, type LedgerEntry, type LedgerStore, PrivacyLedger, type PlannedRelease } from '../../src/privacy/ledger.js';
import { epsilonOf } from '../../src/privacy/rdp.js';
import { ConflictError } from '../../src/store/errors.js';

const ROUND: PlannedRelease = { kind: 'aggregate', q: 0.1, sigma: 1.0, steps: 1 };

function ledgerWithBudget(epsilon: number, store: LedgerStore = new InMemoryLedgerStore()) {
  let clock = 1_000;
  const ledger = new PrivacyLedger({ store, now: () => clock++ });
  ledger.setBudget('run-1', { epsilon, delta: 1e-5 });
  return { ledger, store };
}

describe('ledger – reservations', () => {
  it('records each release durably with a sequence number and time, and recomputes ε from the entries', async () => {
    // Prepare
    const { ledger, store } = ledgerWithBudget(100);
    // Execute
    const first = await ledger.reserve('run-1', ROUND);
    const second = await ledger.reserve('run-1', { kind: 'scalar', q: 0.01, sigma: 2, steps: 50 });
    // Assert
    expect(first).toEqual({ runId: 'run-1', seq: 0, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 1000 });
    expect(second.seq).toBe(1);
    expect(await store.list('run-1')).toEqual([first, second]);
    const spent = await ledger.spent('run-1');
    expect(spent.releases).toBe(2);
    expect(spent.epsilon).toBeGreaterThan(epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 1, delta: 1e-5 }).epsilon);
  });

  it('refuses a release past the budget before it happens, stating what is left and what it would cost', async () => {
    // Prepare: a budget that fits exactly 10 rounds of (q=0.1, σ=1).
    const budget = epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 10, delta: 1e-5 }).epsilon;
    const { ledger, store } = ledgerWithBudget(budget * (1 + 1e-9));
    for (let i = 0; i < 10; i++) await ledger.reserve('run-1', ROUND);
    // Execute
    const refused = ledger.reserve('run-1', ROUND);
    // Assert
    await expect(refused).rejects.toBeInstanceOf(BudgetExceededError);
    const err = (await refused.catch((e: unknown) => e)) as BudgetExceededError;
    expect(err.code).toBe('budget_exceeded');
    expect(err.shortfall.remainingEpsilon).toBeCloseTo(budget * 1e-9, 6);
    expect(err.shortfall.releaseCost).toBeGreaterThan(0);
    expect(err.message).toMatch(/would cost ε [\d.e-]+/);
    expect(err.message).toMatch(/only ε [\d.e-]+ of the budget ε=[\d.]+ is left/);
    expect(await store.list('run-1')).toHaveLength(10);
  });

  it('refuses a release with no noise at all', async () => {
    const { ledger } = ledgerWithBudget(1e6);
    await expect(ledger.reserve('run-1', { ...ROUND, sigma: 0 })).rejects.toThrow(/would cost ε Infinity/);
  });

  it('needs a budget for the run', async () => {
    const ledger = new PrivacyLedger({ store: new InMemoryLedgerStore() });
    await expect(ledger.reserve('nope', ROUND)).rejects.toThrow(NoBudgetError);
    await expect(ledger.spent('nope')).rejects.toThrow(/setBudget/);
  });

  it('does not let concurrent reservations overspend', async () => {
    // Prepare: room for exactly 3 rounds.
    const budget = epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 3, delta: 1e-5 }).epsilon;
    const { ledger, store } = ledgerWithBudget(budget * (1 + 1e-9));
    // Execute: 6 reservations race.
    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => ledger.reserve('run-1', ROUND)));
    // Assert
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
    expect((await store.list('run-1')).map((e) => e.seq)).toEqual([0, 1, 2]);
  });

  it('waits for the store to finish appending before resolving', async () => {
    // Prepare: an asynchronous store that reports when the write completes.
    const events: string[] = [];
    const inner = new InMemoryLedgerStore();
    const slow: LedgerStore = {
      append: async (e: LedgerEntry) => {
        await new Promise((r) => setTimeout(r, 5));
        inner.append(e);
        events.push('written');
      },
      list: (runId) => inner.list(runId),
    };
    const { ledger } = ledgerWithBudget(100, slow);
    // Execute
    await ledger.reserve('run-1', ROUND);
    events.push('resolved');
    // Assert
    expect(events).toEqual(['written', 'resolved']);
  });

  it('keeps runs separate and rejects malformed releases', async () => {
    const { ledger } = ledgerWithBudget(100);
    ledger.setBudget('run-2', { epsilon: 5, delta: 1e-6 });
    await ledger.reserve('run-1', ROUND);
    expect((await ledger.spent('run-2')).releases).toBe(0);
    await expect(ledger.reserve('run-1', { ...ROUND, steps: 0 })).rejects.toThrow(/positive integer/);
    await expect(ledger.reserve('run-1', { ...ROUND, kind: 'gossip' as never })).rejects.toThrow(/release kind/);
    expect(() => ledger.setBudget('run-3', { epsilon: 1, delta: 2 })).toThrow(/δ must be/);
  });
});

/** A ledger store shared by several processes, refusing a taken seq like the NATS store (ConflictError 'ledger_seq'). */
class SharedLedgerStore implements LedgerStore {
  readonly entries: LedgerEntry[] = [];

  async append(entry: LedgerEntry): Promise<void> {
    await new Promise((r) => setTimeout(r, 1)); // both writers have listed before either appends
    if (this.entries.some((e) => e.runId === entry.runId && e.seq === entry.seq)) {
      throw new ConflictError(`ledger entry ${entry.seq} of run ${entry.runId} already exists`, 'ledger_seq');
    }
    this.entries.push(entry);
  }

  async list(runId: string): Promise<LedgerEntry[]> {
    return this.entries.filter((e) => e.runId === runId).sort((a, b) => a.seq - b.seq);
  }
}

describe('ledger – several processes on one store', () => {
  it('a reservation whose seq another process took re-reads the ledger and spends only within budget', async () => {
    // Prepare: two coordinators' ledgers on one store, a budget that fits exactly two rounds
    const budget = epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 2, delta: 1e-5 }).epsilon * (1 + 1e-9);
    const store = new SharedLedgerStore();
    const [a, b] = [ledgerWithBudget(budget, store).ledger, ledgerWithBudget(budget, store).ledger];
    let fences = 0;
    const fence = async (): Promise<void> => void fences++;
    // Execute: both reserve at once, then once more each
    const first = await Promise.all([a.reserve('run-1', ROUND, { beforeAppend: fence }), b.reserve('run-1', ROUND, { beforeAppend: fence })]);
    const third = await Promise.allSettled([a.reserve('run-1', ROUND), b.reserve('run-1', ROUND)]);
    // Assert: seqs 0 and 1 once each, the loser's retry was fenced again, and nothing past the budget
    expect(first.map((e) => e.seq).sort()).toEqual([0, 1]);
    expect(fences).toBe(3);
    expect(third.every((r) => r.status === 'rejected' && r.reason instanceof BudgetExceededError)).toBe(true);
    expect(store.entries.map((e) => e.seq)).toEqual([0, 1]);
  });
});

describe('ledger – a step redone after a crash', () => {
  it('reuses the unused reservation a crashed process left when every entry is the same release, so the round counts once', async () => {
    // Prepare: two rounds opened and used, then a third reserved by a process that died before opening it
    const { ledger, store } = ledgerWithBudget(100);
    for (let claimed = 0; claimed < 3; claimed++) await ledger.reserve('run-1', ROUND, { claimed });
    // Execute: the restarted process redoes round 3 (two rounds claimed), then goes on to round 4
    const redone = await ledger.reserve('run-1', ROUND, { claimed: 2 });
    const next = await ledger.reserve('run-1', ROUND, { claimed: 3 });
    // Assert
    expect(redone.seq).toBe(2);
    expect(next.seq).toBe(3);
    expect((await store.list('run-1')).map((e) => e.seq)).toEqual([0, 1, 2, 3]);
    expect((await ledger.spent('run-1')).epsilon).toBeCloseTo(epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 4, delta: 1e-5 }).epsilon, 12);
  });

  it('appends when the entries differ, since a count cannot tell the unused one apart: over-counts, never under-counts', async () => {
    // Prepare: round 1 reserved at a costly release and left unused by a crash; the redo is a cheaper release
    const { ledger, store } = ledgerWithBudget(100);
    const costly: PlannedRelease = { kind: 'aggregate', q: 0.5, sigma: 1, steps: 10 };
    await ledger.reserve('run-1', costly, { claimed: 0 });
    await ledger.reserve('run-1', ROUND, { claimed: 0 });
    // Execute: round 2 is the same release as round 1's redo; reusing it would leave the costly entry standing for it
    await ledger.reserve('run-1', ROUND, { claimed: 1 });
    // Assert
    expect((await store.list('run-1')).map((e) => e.q)).toEqual([0.5, 0.1, 0.1]);
  });

  it('without claimed, or with no surplus entry, every reservation appends; a malformed claimed is refused', async () => {
    const { ledger, store } = ledgerWithBudget(100);
    await ledger.reserve('run-1', ROUND);
    await ledger.reserve('run-1', ROUND);
    await ledger.reserve('run-1', ROUND, { claimed: 3 });
    expect(await store.list('run-1')).toHaveLength(3);
    await expect(ledger.reserve('run-1', ROUND, { claimed: -1 })).rejects.toThrow(/claimed must be a non-negative integer/);
  });
});
