/**
 * TEST ONLY: a deterministic kill -9 inside the window between recording a privacy release and publishing its result,
 * for test/coordinator/privacy-crash.test.ts. When the environment variable LETHE_TEST_CRASH_AFTER names `point`
 * (`point@round` to crash only in that round), the process sends itself SIGKILL: no cleanup and no flush, the same as
 * kill -9 from outside, but at an exact place. Production never sets the variable; then this is a string comparison.
 *   - 'ledger-record': the round's release is durably in the ledger; the round is not open yet.
 *   - 'aggregate': the round's noisy aggregate is computed and stored as a blob; the round is not closed (published).
 */
export type CrashPoint = 'ledger-record' | 'aggregate';

export function crashPointForTests(point: CrashPoint, round?: number): void {
  const at = process.env.LETHE_TEST_CRASH_AFTER;
  if (at === point || (round !== undefined && at === `${point}@${round}`)) process.kill(process.pid, 'SIGKILL');
}
