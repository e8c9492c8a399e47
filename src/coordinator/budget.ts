/**
 * A run's privacy budget is durable state (store.budgets, with its audit trail); the ledger keeps a copy per process
 * to check reservations against. Another coordinator may have raised it (RaiseBudget lands on whichever coordinator
 * the operator reached), so the copy is refreshed from the store before every use that matters.
 */
import type { PrivacyBudget } from '../privacy/ledger.js';
import type { CoordinatorCore } from './core.js';
import type { RunContext } from './runs.js';

/** The run's budget as stored now (the config's before any is stored), installed in the ledger; undefined without DP. */
export async function refreshBudget(core: CoordinatorCore, ctx: RunContext): Promise<PrivacyBudget | undefined> {
  if (!ctx.plan) return undefined;
  const stored = await core.store.budgets.get(ctx.id);
  const budget = { epsilon: stored?.epsilon ?? ctx.plan.epsilon, delta: stored?.delta ?? ctx.plan.delta };
  core.ledger.setBudget(ctx.id, budget);
  return budget;
}
