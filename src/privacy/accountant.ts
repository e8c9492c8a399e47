/**
 * The RDP accountant, after opacus `accountants/rdp.py`: it only keeps the history of releases, as
 * (q, σ, steps) entries with repeated identical steps merged, and delegates all math to rdp.ts. Composition over
 * entries with different q and σ is the sum of their RDP curves (Mironov 2017, Prop. 1).
 *
 * State saves as plain JSON tagged with the mechanism; loading refuses another mechanism's state, so a Gaussian/PRV
 * accountant's history can never be misread as RDP history.
 */
import { AccountantStateError, InvalidPrivacyParameterError } from './errors.js';
import { type Conversion, DEFAULT_ORDERS, type EpsilonResult, checkStepParameters, computeRdp, epsilonFromRdp } from './rdp.js';

/** `steps` releases of the Poisson-subsampled Gaussian mechanism at sampling rate q and noise multiplier σ. */
export interface HistoryEntry {
  readonly q: number;
  readonly sigma: number;
  readonly steps: number;
}

export const RDP_MECHANISM = 'rdp';
const STATE_VERSION = 1;

/** What `saveState` returns and `loadState` accepts; JSON-serialisable as is. */
export interface AccountantState {
  readonly mechanism: string;
  readonly version: number;
  readonly orders: readonly number[];
  readonly history: readonly HistoryEntry[];
}

export interface RdpAccountantConfig {
  /** RDP orders to evaluate; default {1 + x/10 : x = 1..99} ∪ {12..63}. */
  readonly orders?: readonly number[];
}

export class RdpAccountant {
  readonly mechanism = RDP_MECHANISM;
  readonly orders: readonly number[];
  private readonly entries: HistoryEntry[] = [];

  constructor(config: RdpAccountantConfig = {}) {
    const orders = config.orders ?? DEFAULT_ORDERS;
    if (orders.length === 0 || orders.some((a) => !(a > 1))) {
      throw new InvalidPrivacyParameterError(`RDP orders must be a non-empty list of numbers > 1, got [${orders.join(', ')}]`);
    }
    this.orders = Object.freeze([...orders]);
  }

  /** Records `steps` releases at (q, σ). A step identical to the last entry extends it instead of adding one. */
  step(q: number, sigma: number, steps = 1): void {
    checkStepParameters(q, sigma);
    if (!Number.isInteger(steps) || steps < 1) {
      throw new InvalidPrivacyParameterError(`steps must be a positive integer, got ${steps}`);
    }
    const last = this.entries.at(-1);
    if (last && last.q === q && last.sigma === sigma) {
      this.entries[this.entries.length - 1] = { q, sigma, steps: last.steps + steps };
    } else {
      this.entries.push({ q, sigma, steps });
    }
  }

  get history(): readonly HistoryEntry[] {
    return this.entries.map((e) => ({ ...e }));
  }

  /** Total releases recorded. */
  get steps(): number {
    return this.entries.reduce((n, e) => n + e.steps, 0);
  }

  /** The composed RDP curve at `orders`: the sum over entries. */
  rdp(): Float64Array {
    return composeRdp(this.entries, this.orders);
  }

  /** The tightest (ε, δ) over the orders, with the order achieving it; ε = 0 for an empty history. */
  getEpsilon(delta: number, conversion: Conversion = 'improved'): EpsilonResult {
    return epsilonFromRdp({ rdp: this.rdp(), delta, orders: this.orders, conversion });
  }

  saveState(): AccountantState {
    return { mechanism: this.mechanism, version: STATE_VERSION, orders: [...this.orders], history: this.history };
  }

  /** Rebuilds an accountant from `saveState` output; throws AccountantStateError for anything else. */
  static loadState(state: unknown): RdpAccountant {
    const s = state as Partial<AccountantState> | null;
    if (typeof s !== 'object' || s === null) throw new AccountantStateError('accountant state must be an object');
    if (s.mechanism !== RDP_MECHANISM) {
      throw new AccountantStateError(
        `cannot load state of mechanism "${String(s.mechanism)}" into an RDP accountant; use the accountant that saved it`,
      );
    }
    if (s.version !== STATE_VERSION) {
      throw new AccountantStateError(`RDP accountant state version ${String(s.version)} is not supported (expected ${STATE_VERSION})`);
    }
    if (!Array.isArray(s.orders) || !Array.isArray(s.history)) {
      throw new AccountantStateError('RDP accountant state needs "orders" and "history" arrays');
    }
    try {
      const acc = new RdpAccountant({ orders: s.orders as number[] });
      for (const e of s.history as HistoryEntry[]) acc.step(e.q, e.sigma, e.steps);
      return acc;
    } catch (err) {
      throw new AccountantStateError(`RDP accountant state is malformed: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** Σ over entries of steps · RDP(q, σ) at each order. */
export function composeRdp(entries: readonly HistoryEntry[], orders: readonly number[] = DEFAULT_ORDERS): Float64Array {
  const total = new Float64Array(orders.length);
  for (const e of entries) {
    const r = computeRdp({ q: e.q, noiseMultiplier: e.sigma, steps: e.steps, orders });
    for (let k = 0; k < total.length; k++) total[k] = total[k]! + r[k]!;
  }
  return total;
}
