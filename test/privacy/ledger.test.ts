import { describe, expect, it } from 'vitest';
import { BudgetExceededError, NoBudgetError, ReleaseConflictError } from '../../src/privacy/errors.js';
import {
  InMemoryLedgerStore,
  type LedgerEntry,
  type LedgerStore,
  PrivacyLedger,
  type PlannedRelease,
  sameRelease,
  sameTag,
} from '../../src/privacy/ledger.js';
import { RdpAccountant } from '../../src/privacy/accountant.js';
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
    const first = await ledger.reserve('run-1', 1, ROUND);
    const second = await ledger.reserve('run-1', 2, { kind: 'scalar', q: 0.01, sigma: 2, steps: 50 });
    // Assert
    expect(first).toEqual({ runId: 'run-1', seq: 0, round: 1, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 1000 });
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
    for (let round = 1; round <= 10; round++) await ledger.reserve('run-1', round, ROUND);
    // Execute
    const refused = ledger.reserve('run-1', 11, ROUND);
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
    await expect(ledger.reserve('run-1', 1, { ...ROUND, sigma: 0 })).rejects.toThrow(/would cost ε Infinity/);
  });

  it('needs a budget for the run', async () => {
    const ledger = new PrivacyLedger({ store: new InMemoryLedgerStore() });
    await expect(ledger.reserve('nope', 1, ROUND)).rejects.toThrow(NoBudgetError);
    await expect(ledger.spent('nope')).rejects.toThrow(/setBudget/);
  });

  it('does not let concurrent reservations overspend', async () => {
    // Prepare: room for exactly 3 rounds.
    const budget = epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 3, delta: 1e-5 }).epsilon;
    const { ledger, store } = ledgerWithBudget(budget * (1 + 1e-9));
    // Execute: 6 reservations for 6 rounds race.
    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, (_, k) => ledger.reserve('run-1', k + 1, ROUND)));
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
        const stored = inner.append(e);
        events.push('written');
        return stored;
      },
      list: (runId) => inner.list(runId),
    };
    const { ledger } = ledgerWithBudget(100, slow);
    // Execute
    await ledger.reserve('run-1', 1, ROUND);
    events.push('resolved');
    // Assert
    expect(events).toEqual(['written', 'resolved']);
  });

  it('keeps runs separate and rejects malformed releases', async () => {
    const { ledger } = ledgerWithBudget(100);
    ledger.setBudget('run-2', { epsilon: 5, delta: 1e-6 });
    await ledger.reserve('run-1', 1, ROUND);
    expect((await ledger.spent('run-2')).releases).toBe(0);
    await expect(ledger.reserve('run-1', 2, { ...ROUND, steps: 0 })).rejects.toThrow(/positive integer/);
    await expect(ledger.reserve('run-1', 2, { ...ROUND, kind: 'gossip' as never })).rejects.toThrow(/release kind/);
    await expect(ledger.reserve('run-1', 0, ROUND)).rejects.toThrow(/pays for a round 1, 2, \.\.\.; got round 0/);
    expect(() => ledger.setBudget('run-3', { epsilon: 1, delta: 2 })).toThrow(/δ must be/);
  });
});

/**
 * A ledger store shared by several processes with the durable stores' rules: the entry recorded under a tag comes back
 * for the same release, another release under it is ConflictError 'ledger_tag', a seq not the next one 'ledger_seq'.
 */
class SharedLedgerStore implements LedgerStore {
  readonly entries: LedgerEntry[] = [];

  async append(entry: LedgerEntry): Promise<LedgerEntry> {
    await new Promise((r) => setTimeout(r, 1)); // both writers have listed before either appends
    const recorded = this.entries.find((e) => sameTag(e, entry));
    if (recorded) {
      if (sameRelease(recorded, entry)) return recorded;
      throw new ConflictError(`round ${entry.round} of run ${entry.runId} is already charged`, 'ledger_tag');
    }
    if (entry.seq !== this.entries.filter((e) => e.runId === entry.runId).length) {
      throw new ConflictError(`ledger entry ${entry.seq} of run ${entry.runId} is not the next one`, 'ledger_seq');
    }
    this.entries.push(entry);
    return entry;
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
    // Execute: both reserve at once (different rounds), then once more each
    const first = await Promise.all([a.reserve('run-1', 1, ROUND, { beforeAppend: fence }), b.reserve('run-1', 2, ROUND, { beforeAppend: fence })]);
    const third = await Promise.allSettled([a.reserve('run-1', 3, ROUND), b.reserve('run-1', 4, ROUND)]);
    // Assert: seqs 0 and 1 once each, the loser's retry was fenced again, and nothing past the budget
    expect(first.map((e) => e.seq).sort()).toEqual([0, 1]);
    expect(fences).toBe(3);
    expect(third.every((r) => r.status === 'rejected' && r.reason instanceof BudgetExceededError)).toBe(true);
    expect(store.entries.map((e) => e.seq)).toEqual([0, 1]);
  });
});

describe('ledger – one charge per round', () => {
  it('a round charged again (its step redone after a crash) returns the recorded entry and appends nothing', async () => {
    // Prepare: rounds 1 and 2 at different rates (sample-level DP: q follows the sampled clients' data), round 2 left
    // unused by a process that died before opening it
    const { ledger, store } = ledgerWithBudget(100);
    const cheap: PlannedRelease = { kind: 'aggregate', q: 0.05, sigma: 1, steps: 4 };
    const costly: PlannedRelease = { kind: 'aggregate', q: 0.2, sigma: 1, steps: 4 };
    await ledger.reserve('run-1', 1, cheap);
    const charged = await ledger.reserve('run-1', 2, costly);
    // Execute: the restarted process redoes round 2, then goes on to round 3
    const redone = await ledger.reserve('run-1', 2, costly);
    const next = await ledger.reserve('run-1', 3, cheap);
    // Assert
    expect(redone).toEqual(charged);
    expect(next.seq).toBe(2);
    expect((await store.list('run-1')).map((e) => [e.round, e.q])).toEqual([[1, 0.05], [2, 0.2], [3, 0.05]]);
    const reference = new RdpAccountant();
    reference.step(0.05, 1, 8);
    reference.step(0.2, 1, 4);
    expect((await ledger.spent('run-1')).epsilon).toBeCloseTo(reference.getEpsilon(1e-5).epsilon, 12);
  });

  it('a redo with a release the recorded charge covers (lower q) is counted at the recorded price, once', async () => {
    const { ledger, store } = ledgerWithBudget(100);
    const charged = await ledger.reserve('run-1', 1, { kind: 'scalar', q: 0.2, sigma: 1, steps: 4 });
    expect(await ledger.reserve('run-1', 1, { kind: 'scalar', q: 0.1, sigma: 1.5, steps: 3 })).toEqual(charged);
    expect(await store.list('run-1')).toEqual([charged]);
  });

  it('refuses a redo the recorded charge does not cover, recording nothing, so the caller can shrink it', async () => {
    // Prepare
    const { ledger, store } = ledgerWithBudget(100);
    const charged = await ledger.reserve('run-1', 1, { kind: 'aggregate', q: 0.1, sigma: 1, steps: 4 });
    // Execute
    const refused = ledger.reserve('run-1', 1, { kind: 'aggregate', q: 0.2, sigma: 1, steps: 4 });
    // Assert
    await expect(refused).rejects.toBeInstanceOf(ReleaseConflictError);
    await expect(refused).rejects.toMatchObject({ code: 'release_conflict', round: 1, recorded: charged });
    await expect(refused).rejects.toThrow(/round 1 of run "run-1" is already charged for 4 aggregate releases \(q=0\.1, σ=1\).*q ≤ 0\.1/);
    await expect(ledger.reserve('run-1', 1, { kind: 'aggregate', q: 0.1, sigma: 0.9, steps: 4 })).rejects.toBeInstanceOf(ReleaseConflictError);
    await expect(ledger.reserve('run-1', 1, { kind: 'aggregate', q: 0.1, sigma: 1, steps: 5 })).rejects.toBeInstanceOf(ReleaseConflictError);
    expect(await store.list('run-1')).toEqual([charged]);
  });

  it('another kind of release in the same round is a separate charge', async () => {
    const { ledger, store } = ledgerWithBudget(100);
    await ledger.reserve('run-1', 1, ROUND);
    await ledger.reserve('run-1', 1, { ...ROUND, kind: 'clip_count' });
    expect((await store.list('run-1')).map((e) => [e.round, e.kind])).toEqual([[1, 'aggregate'], [1, 'clip_count']]);
    expect((await ledger.charges('run-1', 1)).map((e) => e.kind)).toEqual(['aggregate', 'clip_count']);
    expect(await ledger.charges('run-1', 2)).toEqual([]);
  });

  it('a redo already charged is not refused for budget: the charge is in ε already', async () => {
    // Prepare: a budget that fits exactly one round, spent on round 1
    const budget = epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 1, delta: 1e-5 }).epsilon * (1 + 1e-9);
    const { ledger } = ledgerWithBudget(budget);
    const charged = await ledger.reserve('run-1', 1, ROUND);
    // Execute / Assert: round 1 redone is fine, round 2 is past the budget
    expect(await ledger.reserve('run-1', 1, ROUND)).toEqual(charged);
    await expect(ledger.reserve('run-1', 2, ROUND)).rejects.toBeInstanceOf(BudgetExceededError);
  });

  it('two processes charging the same round at once record it once, and both get that entry', async () => {
    // Prepare: two coordinators' ledgers on one store (a lease handover in which both briefly think they lead)
    const store = new SharedLedgerStore();
    const [a, b] = [ledgerWithBudget(100, store).ledger, ledgerWithBudget(100, store).ledger];
    // Execute
    const [x, y] = await Promise.all([a.reserve('run-1', 1, ROUND), b.reserve('run-1', 1, ROUND)]);
    // Assert
    expect(x).toEqual(y);
    expect(store.entries).toHaveLength(1);
  });

  it('entries recorded before tags (round null) count towards ε but answer no round', async () => {
    // Prepare: an entry as an older build wrote it
    const store = new InMemoryLedgerStore();
    store.append({ runId: 'run-1', seq: 0, round: null, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 1 });
    const { ledger } = ledgerWithBudget(100, store);
    // Execute
    const first = await ledger.reserve('run-1', 1, ROUND);
    // Assert
    expect(first.seq).toBe(1);
    expect((await ledger.spent('run-1')).epsilon).toBeCloseTo(epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 2, delta: 1e-5 }).epsilon, 12);
  });
});
