/**
 * The privacy ledger: every noisy release of a run (a round aggregate, a clip-count release, a DPZero scalar step) is
 * recorded durably BEFORE its result is published, and a release that would push the run's ε past its budget is
 * refused before it happens (ALGORITHMS.md §2). ε is never stored: it is recomputed from the entries through the RDP
 * accountant, so a crash between recording and releasing can only over-count, never under-count.
 *
 * Each entry is tagged with what it pays for, (run, round, kind), and a run holds at most one entry per tag: a step
 * redone after a crash (kill -9 between the ledger write and opening the round) finds its round's charge instead of
 * adding a second, so no release is counted twice.
 *
 * Storage is behind `LedgerStore` (the SQLite and JetStream implementations live in src/store); this file holds the
 * logic.
 */
import { RdpAccountant } from './accountant.js';
import { BudgetExceededError, InvalidPrivacyParameterError, NoBudgetError, ReleaseConflictError, describeRelease } from './errors.js';
import { DEFAULT_ORDERS, checkDelta, checkStepParameters } from './rdp.js';

export type ReleaseKind = 'aggregate' | 'clip_count' | 'scalar';
const RELEASE_KINDS: readonly ReleaseKind[] = ['aggregate', 'clip_count', 'scalar'];

/** `steps` releases of the Poisson-subsampled Gaussian mechanism at rate q and noise multiplier σ. */
export interface PlannedRelease {
  readonly kind: ReleaseKind;
  readonly q: number;
  readonly sigma: number;
  readonly steps: number;
}

export interface LedgerEntry extends PlannedRelease {
  readonly runId: string;
  /** 0, 1, 2, ... per run, in the order the releases were reserved. */
  readonly seq: number;
  /**
   * The round this release pays for (1, 2, ...); with `runId` and `kind` the entry's tag, unique per run. null on
   * entries recorded before entries were tagged (SQLite schema ≤ 2): they count towards ε but match no tag.
   */
  readonly round: number | null;
  /** When it was reserved, ms since the Unix epoch. */
  readonly at: number;
}

/**
 * Durable storage of ledger entries. `append` must not return (or resolve) until the entry would survive a crash.
 * It is idempotent on the entry's tag (runId, round, kind): when the run already holds an entry with that tag and the
 * same (q, σ, steps), it returns that entry and writes nothing; with another (q, σ, steps) it rejects with a conflict
 * (the src/store stores: ConflictError 'ledger_tag'). Otherwise it appends and returns `entry`, rejecting a seq that is
 * not the run's next one (ConflictError 'ledger_seq': another writer came first). `list` returns a run's entries in
 * seq order.
 */
export interface LedgerStore {
  append(entry: LedgerEntry): LedgerEntry | Promise<LedgerEntry>;
  list(runId: string): readonly LedgerEntry[] | Promise<readonly LedgerEntry[]>;
}

export interface PrivacyBudget {
  /** Total ε the run may spend. */
  readonly epsilon: number;
  /** The δ at which ε is measured. */
  readonly delta: number;
}

export interface SpentReport {
  readonly epsilon: number;
  /** The RDP order achieving `epsilon` (NaN with no releases). */
  readonly order: number;
  readonly delta: number;
  readonly releases: number;
}

export interface PrivacyLedgerConfig {
  readonly store: LedgerStore;
  /** RDP orders for ε; default {1 + x/10 : x = 1..99} ∪ {12..63}. */
  readonly orders?: readonly number[];
  /** The clock stamped on entries; default Date.now. */
  readonly now?: () => number;
}

export class PrivacyLedger {
  private readonly store: LedgerStore;
  private readonly orders: readonly number[];
  private readonly now: () => number;
  private readonly budgets = new Map<string, PrivacyBudget>();
  /** Per-run tail of the reservation queue: check-then-append must not interleave for one run. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(config: PrivacyLedgerConfig) {
    this.store = config.store;
    this.orders = config.orders ?? DEFAULT_ORDERS;
    this.now = config.now ?? Date.now;
  }

  setBudget(runId: string, budget: PrivacyBudget): void {
    if (!(budget.epsilon > 0)) throw new InvalidPrivacyParameterError(`budget ε must be > 0, got ${budget.epsilon}`);
    checkDelta(budget.delta);
    this.budgets.set(runId, Object.freeze({ epsilon: budget.epsilon, delta: budget.delta }));
  }

  budget(runId: string): PrivacyBudget | undefined {
    return this.budgets.get(runId);
  }

  /** ε spent so far by the run, recomputed from its entries. */
  async spent(runId: string): Promise<SpentReport> {
    const budget = this.requireBudget(runId);
    const entries = await this.store.list(runId);
    const { epsilon, order } = this.accountantFor(entries).getEpsilon(budget.delta);
    return { epsilon, order, delta: budget.delta, releases: entries.length };
  }

  /** The entries that pay for round `round` of the run (none before it was charged). */
  async charges(runId: string, round: number): Promise<LedgerEntry[]> {
    return (await this.store.list(runId)).filter((e) => e.round === round);
  }

  /**
   * Charges round `round` of the run for `release`: records it durably, tagged (runId, round, release.kind), if the
   * run's ε after it stays within budget, and returns the entry; otherwise throws BudgetExceededError (stating what
   * is left and what the release would cost) and records nothing. Call it BEFORE drawing the release's noise or
   * publishing its result.
   *
   * A tag is charged once. When the run already holds an entry with this tag (the caller is redoing a step a crash
   * interrupted after the charge), that entry is returned and nothing is appended, provided it covers `release`:
   * same kind, q no higher, σ no lower, no more steps, so the recorded charge is at least what the release costs. An
   * entry that does not cover it throws ReleaseConflictError: the caller must shrink the release to what was charged.
   *
   * Several processes may share one ledger store: when another one appended first (the store refuses the seq this one
   * computed, or the tag with a different release), the entries are read again and the checks redone, up to
   * SEQ_ATTEMPTS times. `beforeAppend` runs before every append attempt (a coordinator checks there that it still leads
   * the run) and can abort the reservation by throwing.
   */
  async reserve(
    runId: string,
    round: number,
    release: PlannedRelease,
    options: { readonly beforeAppend?: () => Promise<void> } = {},
  ): Promise<LedgerEntry> {
    checkRelease(release);
    if (!Number.isInteger(round) || round < 1) {
      throw new InvalidPrivacyParameterError(`a release pays for a round 1, 2, ...; got round ${round}`);
    }
    const budget = this.requireBudget(runId);
    const attempt = async (): Promise<LedgerEntry> => {
      const entries = await this.store.list(runId);
      const recorded = entries.find((e) => e.round === round && e.kind === release.kind);
      if (recorded) {
        if (covers(recorded, release)) return recorded;
        throw new ReleaseConflictError(runId, round, recorded, release);
      }
      const before = this.accountantFor(entries);
      const spentEpsilon = before.getEpsilon(budget.delta).epsilon;
      before.step(release.q, release.sigma, release.steps);
      const epsilonAfter = before.getEpsilon(budget.delta).epsilon;
      if (!(epsilonAfter <= budget.epsilon)) {
        throw new BudgetExceededError(
          {
            runId,
            budgetEpsilon: budget.epsilon,
            delta: budget.delta,
            spentEpsilon,
            epsilonAfter,
            remainingEpsilon: Math.max(0, budget.epsilon - spentEpsilon),
            releaseCost: epsilonAfter - spentEpsilon,
          },
          describeRelease(release),
        );
      }
      const seq = entries.reduce((s, e) => Math.max(s, e.seq + 1), 0);
      const entry: LedgerEntry = Object.freeze({ runId, seq, round, ...pick(release), at: this.now() });
      await options.beforeAppend?.();
      return await this.store.append(entry);
    };
    const run = async (): Promise<LedgerEntry> => {
      for (let n = 1; ; n++) {
        try {
          return await attempt();
        } catch (err) {
          if (!isLostRace(err) || n >= SEQ_ATTEMPTS) throw err;
        }
      }
    };
    const result = (this.queues.get(runId) ?? Promise.resolve()).then(run, run);
    this.queues.set(runId, result.catch(() => undefined));
    return result;
  }

  private requireBudget(runId: string): PrivacyBudget {
    const budget = this.budgets.get(runId);
    if (!budget) throw new NoBudgetError(runId);
    return budget;
  }

  private accountantFor(entries: readonly LedgerEntry[]): RdpAccountant {
    const acc = new RdpAccountant({ orders: this.orders });
    for (const e of entries) acc.step(e.q, e.sigma, e.steps);
    return acc;
  }
}

/** Keeps entries in memory only: NOT durable, for unit tests. The durable stores' tag rule; seqs need only be unique. */
export class InMemoryLedgerStore implements LedgerStore {
  private readonly entries: LedgerEntry[] = [];

  append(entry: LedgerEntry): LedgerEntry {
    const recorded = entry.round === null ? undefined : this.entries.find((e) => sameTag(e, entry));
    if (recorded) {
      if (sameRelease(recorded, entry)) return recorded;
      throw new InvalidPrivacyParameterError(`round ${entry.round} of run "${entry.runId}" is already charged for ${describeRelease(recorded)}`);
    }
    if (this.entries.some((e) => e.runId === entry.runId && e.seq === entry.seq)) {
      throw new InvalidPrivacyParameterError(`ledger already has entry ${entry.seq} for run "${entry.runId}"`);
    }
    this.entries.push(entry);
    return entry;
  }

  list(runId: string): readonly LedgerEntry[] {
    return this.entries.filter((e) => e.runId === runId).sort((a, b) => a.seq - b.seq);
  }
}

/** Both entries pay for the same thing: one run's round, one kind of release. Untagged entries match nothing. */
export function sameTag(a: LedgerEntry, b: LedgerEntry): boolean {
  return a.round !== null && a.runId === b.runId && a.round === b.round && a.kind === b.kind;
}

/** The same mechanism, the same number of times. */
export function sameRelease(a: PlannedRelease, b: PlannedRelease): boolean {
  return a.kind === b.kind && a.q === b.q && a.sigma === b.sigma && a.steps === b.steps;
}

/**
 * `charged` costs at least what `release` does at every RDP order: the subsampled Gaussian's RDP grows with q and with
 * the number of steps and shrinks as σ grows (Mironov, Talwar, Zhang 2019, §3.3).
 */
function covers(charged: PlannedRelease, release: PlannedRelease): boolean {
  return charged.kind === release.kind && charged.q >= release.q && charged.sigma <= release.sigma && charged.steps >= release.steps;
}

/** Re-read-and-retry rounds of one reservation that lost its seq or tag to another writer before giving up. */
const SEQ_ATTEMPTS = 16;

/** The store refused the append because another writer came first (src/store ConflictError 'ledger_seq' or 'ledger_tag'). */
function isLostRace(err: unknown): boolean {
  const e = err as { code?: unknown; what?: unknown } | null;
  return e?.code === 'conflict' && (e.what === 'ledger_seq' || e.what === 'ledger_tag');
}

function checkRelease(r: PlannedRelease): void {
  if (!RELEASE_KINDS.includes(r.kind)) {
    throw new InvalidPrivacyParameterError(`release kind must be one of ${RELEASE_KINDS.join(', ')}, got "${String(r.kind)}"`);
  }
  checkStepParameters(r.q, r.sigma);
  if (!Number.isInteger(r.steps) || r.steps < 1) {
    throw new InvalidPrivacyParameterError(`release steps must be a positive integer, got ${r.steps}`);
  }
}

function pick(r: PlannedRelease): PlannedRelease {
  return { kind: r.kind, q: r.q, sigma: r.sigma, steps: r.steps };
}
