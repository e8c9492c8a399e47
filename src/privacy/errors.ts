/**
 * Errors of the privacy package. Each carries a stable `code` so callers (the coordinator, the CLI, the gRPC status
 * mapping) can branch without parsing messages, and chains the error that caused it.
 */

export type PrivacyErrorCode =
  | 'invalid_parameter'
  | 'accountant_state'
  | 'budget_exceeded'
  | 'no_budget'
  | 'invalid_update'
  | 'release_conflict';

/** Base class: every error this package throws is a PrivacyError. */
export class PrivacyError extends Error {
  override name = 'PrivacyError';
  constructor(
    message: string,
    readonly code: PrivacyErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A parameter outside its valid range (q ∉ [0, 1], σ < 0, δ ∉ (0, 1), an order ≤ 1, ...). */
export class InvalidPrivacyParameterError extends PrivacyError {
  override name = 'InvalidPrivacyParameterError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'invalid_parameter', options);
  }
}

/** Saved accountant state that cannot be loaded: another mechanism's, another version's, or malformed. */
export class AccountantStateError extends PrivacyError {
  override name = 'AccountantStateError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'accountant_state', options);
  }
}

/** A client update the DP wrapper cannot use (wrong tensors, non-finite values, a malformed clip indicator). */
export class InvalidUpdateError extends PrivacyError {
  override name = 'InvalidUpdateError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'invalid_update', options);
  }
}

/** The ledger has no (ε, δ) budget for a run, so it cannot decide whether a release is allowed. */
export class NoBudgetError extends PrivacyError {
  override name = 'NoBudgetError';
  constructor(readonly runId: string) {
    super(`no privacy budget is set for run "${runId}": call setBudget(runId, { epsilon, delta }) first`, 'no_budget');
  }
}

/** A release as the ledger sees it (ledger.ts PlannedRelease), for messages. */
interface ReleaseShape {
  readonly kind: string;
  readonly q: number;
  readonly sigma: number;
  readonly steps: number;
}

/**
 * A round is already charged in the ledger for a release that does not cover the one now planned for it (the plan
 * samples more of each client's data, adds steps or less noise). Nothing was recorded: the round may open only with a
 * release the recorded charge covers, since charging it again would count the round twice.
 */
export class ReleaseConflictError extends PrivacyError {
  override name = 'ReleaseConflictError';
  constructor(
    readonly runId: string,
    readonly round: number,
    readonly recorded: ReleaseShape,
    readonly planned: ReleaseShape,
  ) {
    super(
      `round ${round} of run "${runId}" is already charged for ${describeRelease(recorded)}, which does not cover the planned ` +
        `${describeRelease(planned)}; open the round with a release the charge covers (q ≤ ${recorded.q}, σ ≥ ${recorded.sigma}, ` +
        `steps ≤ ${recorded.steps}, kind ${recorded.kind})`,
      'release_conflict',
    );
  }
}

export function describeRelease(r: ReleaseShape): string {
  return `${r.steps} ${r.kind} release${r.steps === 1 ? '' : 's'} (q=${r.q}, σ=${r.sigma})`;
}

/** What a refused release would have cost, and what the run has left. */
export interface BudgetShortfall {
  readonly runId: string;
  /** The run's budget. */
  readonly budgetEpsilon: number;
  readonly delta: number;
  /** ε already spent by the recorded releases. */
  readonly spentEpsilon: number;
  /** ε the run would have spent after the planned release. */
  readonly epsilonAfter: number;
  /** budgetEpsilon − spentEpsilon (never negative). */
  readonly remainingEpsilon: number;
  /** epsilonAfter − spentEpsilon: what the release would cost. */
  readonly releaseCost: number;
}

/** A release would push a run's ε past its budget; nothing was released or recorded. */
export class BudgetExceededError extends PrivacyError {
  override name = 'BudgetExceededError';
  constructor(
    readonly shortfall: BudgetShortfall,
    releaseDescription: string,
  ) {
    const s = shortfall;
    super(
      `refused ${releaseDescription} for run "${s.runId}": it would cost ε ${fmt(s.releaseCost)} ` +
        `(ε ${fmt(s.spentEpsilon)} → ${fmt(s.epsilonAfter)} at δ=${s.delta}) but only ε ${fmt(s.remainingEpsilon)} ` +
        `of the budget ε=${s.budgetEpsilon} is left; raise the noise multiplier, sample fewer clients, or end the run`,
      'budget_exceeded',
    );
  }
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toPrecision(4) : String(x);
}
