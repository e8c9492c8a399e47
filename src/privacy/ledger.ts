/**
 * The privacy ledger: every noisy release of a run (a round aggregate, a clip-count release, a DPZero scalar step) is
 * recorded durably BEFORE its result is published, and a release that would push the run's ε past its budget is
 * refused before it happens (ALGORITHMS.md §2). ε is never stored: it is recomputed from the entries through the RDP
 * accountant, so a crash between reserving and releasing can only over-count, never under-count; a step redone after
 * such a crash reuses its unused entry where that is provably sound (reserve's `claimed`), so it is not counted twice.
 *
 * Storage is behind `LedgerStore` (the SQLite implementation lives in src/store); this file holds the logic.
 */
import { RdpAccountant } from './accountant.js';
import { BudgetExceededError, InvalidPrivacyParameterError, NoBudgetError } from './errors.js';
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
  /** When it was reserved, ms since the Unix epoch. */
  readonly at: number;
}

/**
 * Durable storage of ledger entries. `append` must not return (or resolve) until the entry would survive a crash,
 * and must reject an entry whose (runId, seq) already exists. `list` returns a run's entries in seq order.
 */
export interface LedgerStore {
  append(entry: LedgerEntry): void | Promise<void>;
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

  /**
   * Records `release` durably if the run's ε after it stays within budget, and returns the entry; otherwise throws
   * BudgetExceededError (stating what is left and what the release would cost) and records nothing. Call it BEFORE
   * drawing the release's noise or publishing its result.
   *
   * Several processes may share one ledger store: when another one appended the seq this one computed (the store
   * refuses it with a conflict on 'ledger_seq'), the entries are read again and the budget checked again, up to
   * `seqAttempts` times. `beforeAppend` runs before every append attempt (a coordinator checks there that it still
   * leads the run) and can abort the reservation by throwing.
   *
   * `claimed`: how many of the run's entries stand for releases the caller has started (a coordinator: the rounds it
   * opened under DP). More entries than that means a process reserved and then died before starting its release
   * (kill -9 between the ledger write and opening the round), and the caller is now redoing that step. When every
   * entry of the run equals `release` (central and local DP: one fixed (q, σ) per round), such an unused entry is
   * returned and nothing is appended, so the redone step is counted once. When the entries differ (sample-level DP,
   * whose q follows the sampled clients' data sizes), a count cannot tell an unused entry from a used one, so a new
   * one is appended: the crash then over-counts, never under-counts. Without `claimed` every call appends.
   */
  async reserve(
    runId: string,
    release: PlannedRelease,
    options: { readonly beforeAppend?: () => Promise<void>; readonly claimed?: number } = {},
  ): Promise<LedgerEntry> {
    checkRelease(release);
    const budget = this.requireBudget(runId);
    const { claimed } = options;
    if (claimed !== undefined && !(Number.isInteger(claimed) && claimed >= 0)) {
      throw new InvalidPrivacyParameterError(`claimed must be a non-negative integer, got ${claimed}`);
    }
    const attempt = async (): Promise<LedgerEntry> => {
      const entries = await this.store.list(runId);
      const unused = claimed === undefined ? undefined : unusedReservation(entries, claimed, release);
      if (unused) return unused;
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
          describe(release),
        );
      }
      const seq = entries.reduce((s, e) => Math.max(s, e.seq + 1), 0);
      const entry: LedgerEntry = Object.freeze({ runId, seq, ...pick(release), at: this.now() });
      await options.beforeAppend?.();
      await this.store.append(entry);
      return entry;
    };
    const run = async (): Promise<LedgerEntry> => {
      for (let n = 1; ; n++) {
        try {
          return await attempt();
        } catch (err) {
          if (!isSeqConflict(err) || n >= SEQ_ATTEMPTS) throw err;
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

/** Keeps entries in memory only: NOT durable, for unit tests. */
export class InMemoryLedgerStore implements LedgerStore {
  private readonly entries: LedgerEntry[] = [];

  append(entry: LedgerEntry): void {
    if (this.entries.some((e) => e.runId === entry.runId && e.seq === entry.seq)) {
      throw new InvalidPrivacyParameterError(`ledger already has entry ${entry.seq} for run "${entry.runId}"`);
    }
    this.entries.push(entry);
  }

  list(runId: string): readonly LedgerEntry[] {
    return this.entries.filter((e) => e.runId === runId).sort((a, b) => a.seq - b.seq);
  }
}

/** Re-read-and-retry rounds of one reservation that lost its seq to another writer before giving up. */
const SEQ_ATTEMPTS = 16;

/** The store refused the seq because another writer appended it first (src/store ConflictError what='ledger_seq'). */
function isSeqConflict(err: unknown): boolean {
  return (err as { code?: unknown; what?: unknown } | null)?.code === 'conflict' && (err as { what?: unknown }).what === 'ledger_seq';
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

/** An entry reserved but never used that can stand for `release` (see PrivacyLedger.reserve's `claimed`), if any. */
function unusedReservation(entries: readonly LedgerEntry[], claimed: number, release: PlannedRelease): LedgerEntry | undefined {
  if (entries.length <= claimed) return undefined;
  const same = (e: PlannedRelease): boolean => e.kind === release.kind && e.q === release.q && e.sigma === release.sigma && e.steps === release.steps;
  return entries.every(same) ? entries[entries.length - 1] : undefined;
}

function pick(r: PlannedRelease): PlannedRelease {
  return { kind: r.kind, q: r.q, sigma: r.sigma, steps: r.steps };
}

function describe(r: PlannedRelease): string {
  return `${r.steps} ${r.kind} release${r.steps === 1 ? '' : 's'} (q=${r.q}, σ=${r.sigma})`;
}
