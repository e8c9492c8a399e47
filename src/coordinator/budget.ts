/**
 * What a run's rounds cost in privacy, on the coordinator's side: the run's budget and each round's charge.
 *
 * A run's privacy budget is durable state (store.budgets, with its audit trail); the ledger keeps a copy per process
 * to check reservations against. Another coordinator may have raised it (RaiseBudget lands on whichever coordinator
 * the operator reached), so the copy is refreshed from the store before every use that matters.
 */
import type { PrivacyBudget } from '../privacy/ledger.js';
import type { CoordinatorCore } from './core.js';
import { roundRelease, sampleRate } from './run-strategy.js';
import type { RunCandidate, RunContext } from './runs.js';

/** The run's budget as stored now (the config's before any is stored), installed in the ledger; undefined without DP. */
export async function refreshBudget(core: CoordinatorCore, ctx: RunContext): Promise<PrivacyBudget | undefined> {
  if (!ctx.plan) return undefined;
  const stored = await core.store.budgets.get(ctx.id);
  const budget = { epsilon: stored?.epsilon ?? ctx.plan.epsilon, delta: stored?.delta ?? ctx.plan.delta };
  core.ledger.setBudget(ctx.id, budget);
  return budget;
}

/**
 * Charges round `round` in the ledger for the release its `sampled` clients make, before the round opens, and returns
 * the clients it may open with. Throws BudgetExceededError (nothing recorded) when the run cannot afford the round.
 *
 * The charge is tagged with the round, so when a crash came between the charge and the open, the redo finds it
 * instead of charging again. The redo samples the clients live now, which may not be the ones charged for: a
 * sample-level release's q is set by the sampled client with the least data (its Poisson rate B/N is the highest), so
 * the redo keeps only the clients whose rate the recorded charge covers, and charges under the recorded kind (a
 * DP-SGD step and a DPZero step are the same (q, σ) mechanism; run-strategy.ts roundRelease). With no client left the
 * round opens empty and fails, its charge recorded once. Central and local releases do not depend on who is sampled.
 */
export async function chargeRound(
  core: CoordinatorCore,
  ctx: RunContext,
  round: number,
  sampled: readonly RunCandidate[],
  fence: () => Promise<void>,
): Promise<readonly RunCandidate[]> {
  const { plan } = ctx;
  if (!plan) return sampled; // no DP, nothing to charge
  const [recorded] = await core.ledger.charges(ctx.id, round);
  const { batchSize } = ctx.config.local;
  const covered = recorded && plan.mode === 'sample' ? sampled.filter((c) => sampleRate(batchSize, c.numExamples) <= recorded.q) : sampled;
  if (covered.length === 0) return covered;
  const release = roundRelease(ctx.config, plan, covered.map((c) => c.numExamples), covered.every((c) => c.mode === 'mezo'));
  await core.ledger.reserve(ctx.id, round, recorded ? { ...release, kind: recorded.kind } : release, { beforeAppend: fence });
  return covered;
}
