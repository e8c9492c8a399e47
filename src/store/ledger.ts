/**
 * What both ledger stores (sqlite/privacy.ts, nats/privacy.ts) check on an entry before writing it, and the conflicts
 * they report, so the two refuse the same things with the same errors (the contract in src/privacy/ledger.ts).
 */
import { describeRelease } from '../privacy/errors.js';
import type { LedgerEntry, ReleaseKind } from '../privacy/ledger.js';
import { ConflictError } from './errors.js';
import { checkId, checkInt, checkNumber } from './validate.js';

/** `entry` validated field by field; a missing round (a caller that predates tags) is an untagged entry. */
export function checkEntry(entry: LedgerEntry): LedgerEntry {
  const round = entry.round ?? null;
  return {
    runId: checkId(entry.runId, 'run id'),
    seq: checkInt(entry.seq, 'ledger seq'),
    round: round === null ? null : checkInt(round, 'ledger round', 1),
    kind: checkId(entry.kind, 'ledger kind') as ReleaseKind,
    q: checkNumber(entry.q, 'q', 0, 1),
    sigma: checkNumber(entry.sigma, 'sigma', 0),
    steps: checkInt(entry.steps, 'steps', 1),
    at: checkInt(entry.at, 'ledger entry time'),
  };
}

/**
 * The entry's seq is not the run's next one: another writer appended first (or the caller read a stale ledger). The
 * stores append only at the next seq, so a writer's tag check always saw every earlier entry.
 */
export function seqConflict(entry: LedgerEntry, next: number): ConflictError {
  return new ConflictError(
    `ledger entry ${entry.seq} of run ${entry.runId} is not the next one (${next}): another writer appended first; re-read the ledger and retry`,
    'ledger_seq',
  );
}

/** The entry's round is already charged for another release: writing this one too would count the round twice. */
export function tagConflict(recorded: LedgerEntry, entry: LedgerEntry): ConflictError {
  return new ConflictError(
    `round ${entry.round} of run ${entry.runId} is already charged for ${describeRelease(recorded)} (ledger entry ` +
      `${recorded.seq}); refusing a second ${entry.kind} charge of ${describeRelease(entry)}`,
    'ledger_tag',
  );
}
