import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClientPrivacyAccount, PrivacyBudgetError } from '../../src/client/privacy.js';
import { RdpAccountant } from '../../src/privacy/accountant.js';
import { tempDir } from './helpers.js';

const budget = { epsilon: 2, delta: 1e-5 };
const release = { q: 0.05, sigma: 1.5, steps: 10 }; // one DPZero task: 10 scalar releases at q = 0.05

describe('client privacy account', () => {
  it('privacy account – charges each task\'s DP steps once and refuses the task that would pass the budget', async () => {
    // Arrange
    const dir = tempDir('lethe-client-privacy-');
    try {
      const path = join(dir.path, 'privacy-account.json');
      const account = await ClientPrivacyAccount.open(path, budget);
      const reference = new RdpAccountant();

      // Act: charge tasks until one is refused
      let charged = 0;
      let refusal: unknown;
      for (let t = 0; t < 100 && refusal === undefined; t++) {
        try {
          await account.charge(`run/${t}/c`, release);
          await account.charge(`run/${t}/c`, release); // the same task again: not charged twice
          reference.step(release.q, release.sigma, release.steps);
          charged++;
        } catch (err) {
          refusal = err;
        }
      }

      // Assert: ε is the accountant's for exactly the charged tasks, within budget, and survives a reopen
      expect(charged).toBeGreaterThan(0);
      expect(refusal).toBeInstanceOf(PrivacyBudgetError);
      expect((refusal as PrivacyBudgetError).message).toMatch(/past its budget ε=2/);
      expect(account.spent()).toBeCloseTo(reference.getEpsilon(budget.delta).epsilon, 12);
      expect(account.spent()).toBeLessThanOrEqual(budget.epsilon);
      const reopened = await ClientPrivacyAccount.open(path, budget);
      expect(reopened.spent()).toBe(account.spent());
      await expect(reopened.charge(`run/${charged}/c`, release)).rejects.toBeInstanceOf(PrivacyBudgetError);
    } finally {
      dir.remove();
    }
  });
});
