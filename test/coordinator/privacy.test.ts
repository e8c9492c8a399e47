/**
 * Central DP in the round loop: every round's release is reserved in the durable ledger before the round opens, a run
 * whose budget allows k rounds stops after k as budget_exhausted, and RaiseBudget resumes it.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { RdpAccountant } from '../../src/privacy/accountant.js';
import { openSqliteStore, sqliteStorePath } from '../../src/store/sqlite.js';
import type { Task } from '../../src/wire/messages.js';
import { Admin, makeDelta, runJson, tempDir, TestClient, waitFor, writeTestModel } from './helpers.js';

/** ε after `rounds` full-participation Gaussian releases at σ. */
function epsilonAfter(rounds: number, sigma: number, delta: number): number {
  const acc = new RdpAccountant();
  acc.step(1, sigma, rounds);
  return acc.getEpsilon(delta).epsilon;
}

describe('coordinator privacy budget', () => {
  const dir = tempDir('lethe-dp-');
  let coordinator: Coordinator;
  let admin: Admin;
  let clients: TestClient[];
  let baseModel: string;

  beforeAll(async () => {
    baseModel = await writeTestModel(dir.path);
    coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: () => undefined, waitForClientsMs: 50 });
    await coordinator.start();
    admin = new Admin(coordinator.address, coordinator.adminToken);
    const token = await admin.joinToken(3);
    clients = [0, 1, 2].map(() => new TestClient(coordinator.address));
    for (const c of clients) {
      await c.enroll(token);
      await c.heartbeat();
    }
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  /** Each client pulls its task for `round` and uploads a small update. */
  async function playRound(round: number): Promise<Task[]> {
    const tasks = (await Promise.all(clients.map((c) => c.pullTask(5000)))) as Task[];
    expect(tasks.map((t) => t?.round)).toEqual([round, round, round]);
    const global = await clients[0]!.fetchAdapter(tasks[0]!);
    await Promise.all(clients.map((c, k) => c.push(tasks[k]!, makeDelta(tasks[k]!, global, () => 0.01 * (k + 1)))));
    return tasks;
  }

  it('privacy – a run whose budget allows two rounds stops after two as budget_exhausted, with both releases in the ledger', async () => {
    // Arrange: a budget between ε(2 rounds) and ε(3 rounds)
    const sigma = 1.5;
    const delta = 1e-5;
    const budget = (epsilonAfter(2, sigma, delta) + epsilonAfter(3, sigma, delta)) / 2;
    const { runId } = await admin.createRun(
      runJson(baseModel, { rounds: 5, min_clients: 2, sample_rate: 1, privacy: { mode: 'central', epsilon: budget, delta, clip: 0.5, noise_multiplier: sigma } }),
    );

    // Act
    const tasks = await playRound(1);
    await playRound(2);
    const run = await waitFor(async () => {
      const r = await admin.call('GetRun', { runId });
      return r.state === 'RUN_STATE_BUDGET_EXHAUSTED' ? r : undefined;
    }, 10_000, 'budget exhaustion');

    // Assert: two rounds closed, the third never opened, the message says what is left
    expect(tasks[0]!.privacy?.clipNorm).toBe(0.5);
    expect(run.currentRound).toBe(2);
    expect(run.message).toMatch(/ε [0-9.]+ left/);
    expect(run.privacy?.epsilonSpent).toBeCloseTo(epsilonAfter(2, sigma, delta), 6);
    expect(run.privacy?.epsilonBudget).toBe(budget);
    const rounds = (await admin.call('ListRounds', { runId })).rounds;
    expect(rounds.map((r) => r.state)).toEqual(['ROUND_STATE_COMPLETED', 'ROUND_STATE_COMPLETED']);
    expect(rounds[0]!.epsilonAfter).toBeCloseTo(epsilonAfter(2, sigma, delta), 6);
    const store = openSqliteStore(sqliteStorePath(join(dir.path, 'data')));
    try {
      const ledger = await store.ledger.list(runId);
      expect(ledger.map((e) => [e.seq, e.kind, e.q, e.sigma, e.steps])).toEqual([
        [0, 'aggregate', 1, sigma, 1],
        [1, 'aggregate', 1, sigma, 1],
      ]);
    } finally {
      store.close();
    }

    // Act: the operator raises the budget; the run resumes with round 3
    const raised = await admin.call('RaiseBudget', { runId, epsilonBudget: epsilonAfter(3, sigma, delta) * 1.01, reason: 'approved by DPO' });
    expect(raised.state).toBe('RUN_STATE_RUNNING');
    await playRound(3);
    await waitFor(async () => ((await admin.call('GetRun', { runId })).state === 'RUN_STATE_BUDGET_EXHAUSTED' ? true : undefined), 10_000, 'second exhaustion');
    expect((await admin.call('GetRun', { runId })).currentRound).toBe(3);
  });
});
