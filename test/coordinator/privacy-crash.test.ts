/**
 * kill -9 of a real coordinator process between recording a privacy release in the ledger and publishing its result
 * (ALGORITHMS.md §2): after a restart on the same data directory the ledger holds at least what was released and
 * counts each round once, though the interrupted step is redone. The process kills itself at an exact point
 * (LETHE_TEST_CRASH_AFTER, src/privacy/crash-point.ts), which a kill from outside could only hit by chance.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readAdminToken } from '../../src/auth/admin-token.js';
import { RdpAccountant } from '../../src/privacy/accountant.js';
import type { CrashPoint } from '../../src/privacy/crash-point.js';
import type { LedgerEntry } from '../../src/privacy/ledger.js';
import { openSqliteStore, sqliteStorePath } from '../../src/store/sqlite.js';
import { callUnary } from '../../src/wire/services.js';
import type { Capabilities, MessageInput, Task } from '../../src/wire/messages.js';
import { Admin, makeDelta, proto, runJson, TEST_CAPABILITIES, tempDir, TestClient, waitFor, writeTestModel } from './helpers.js';
import { BUILT, kill9, startProcess, type Running } from './process.js';

const SIGMA = 1.5;
const DELTA = 1e-5;

/** ε after `rounds` full-participation Gaussian releases at SIGMA. */
function epsilonAfter(rounds: number): number {
  const acc = new RdpAccountant();
  acc.step(1, SIGMA, rounds);
  return acc.getEpsilon(DELTA).epsilon;
}

/** A client declares new capabilities (here: how many examples it holds, which sets its sample-level Poisson rate). */
async function updateCapabilities(client: TestClient, capabilities: MessageInput<Capabilities>): Promise<void> {
  const body = proto.bodies.capabilities.encode(capabilities);
  await callUnary(client.enrollment, 'UpdateCapabilities', { auth: client.auth('enrollment', 'UpdateCapabilities', body), body });
}

/** Resolves with the signal that ended the child. */
function exited(r: Running): Promise<NodeJS.Signals | null> {
  return new Promise((resolve) => {
    if (r.child.exitCode !== null || r.child.signalCode !== null) resolve(r.child.signalCode);
    r.child.removeAllListeners('exit');
    r.child.on('exit', (_code, signal) => resolve(signal));
  });
}

describe('privacy ledger across kill -9', () => {
  const dir = tempDir('lethe-dp-crash-');
  const dataDir = join(dir.path, 'data');
  let baseModel: string;
  let running: Running | undefined;
  const identities: { keys: TestClient['keys']; id: string }[] = [];

  beforeAll(async () => {
    if (!existsSync(BUILT)) throw new Error('dist/coordinator is missing: run `npx tsc -p .` (npm test builds first)');
    baseModel = await writeTestModel(dir.path);
    // Enrol the clients on a coordinator without the hook; enrolment marks a client live, heartbeats do from then on.
    const first = await startProcess(dataDir);
    const admin = new Admin(first.address, await readAdminToken(dataDir));
    const token = await admin.joinToken(3);
    for (let k = 0; k < 3; k++) {
      const c = new TestClient(first.address);
      identities.push({ keys: c.keys, id: await c.enroll(token) });
      c.close();
    }
    admin.close();
    await kill9(first);
  });

  afterEach(async () => {
    if (running && running.child.exitCode === null && running.child.signalCode === null) await kill9(running);
    running = undefined;
  });

  afterAll(() => dir.remove());

  /** Starts a coordinator (that kills itself at `crashAt`, in any round or in one, when given); the clients are not live until `live`. */
  async function start(crashAt?: CrashPoint | `${CrashPoint}@${number}`): Promise<{ admin: Admin; clients: TestClient[]; close(): void }> {
    running = await startProcess(dataDir, crashAt ? { LETHE_TEST_CRASH_AFTER: crashAt } : {});
    const admin = new Admin(running.address, await readAdminToken(dataDir));
    const clients = identities.map((i) => new TestClient(running!.address, Date.now, i.keys, i.id));
    return { admin, clients, close: () => [admin, ...clients].forEach((x) => x.close()) };
  }

  /** Heartbeats make the clients live, so the driver opens a round; settled, since a crash point may end the process. */
  async function live(clients: readonly TestClient[]): Promise<void> {
    await Promise.allSettled(clients.map((c) => c.heartbeat()));
  }

  function createRun(admin: Admin): Promise<{ runId: string }> {
    return admin.createRun(
      runJson(baseModel, { rounds: 1, min_clients: 3, sample_rate: 1, round_deadline_s: 60, privacy: { mode: 'central', epsilon: 10, delta: DELTA, clip: 0.5, noise_multiplier: SIGMA } }),
    );
  }

  async function ledgerOf(runId: string): Promise<readonly LedgerEntry[]> {
    const store = openSqliteStore(sqliteStorePath(dataDir));
    try {
      return await store.ledger.list(runId);
    } finally {
      store.close();
    }
  }

  /** Every client pulls its task of `round`. */
  async function pullRound(clients: readonly TestClient[], round = 1): Promise<Task[]> {
    const tasks = (await Promise.all(clients.map((c) => c.pullTask(5000)))) as Task[];
    expect(tasks.map((t) => t?.round)).toEqual(clients.map(() => round));
    return tasks;
  }

  /**
   * Every client uploads a small update for its task. Settled, not awaited as successes: the last upload can close
   * the round, and a crash point may kill the process before that reply is written.
   */
  async function pushRound(clients: readonly TestClient[], tasks: readonly Task[]): Promise<void> {
    const global = await clients[0]!.fetchAdapter(tasks[0]!);
    await Promise.allSettled(clients.map((c, k) => c.push(tasks[k]!, makeDelta(tasks[k]!, global, () => 0.01 * (k + 1)))));
  }

  async function playRound(clients: readonly TestClient[], round = 1): Promise<void> {
    await pushRound(clients, await pullRound(clients, round));
  }

  /** After the restart the run completes with its one round closed and exactly one release in the ledger. */
  async function expectCountedOnce(admin: Admin, runId: string): Promise<void> {
    const run = await waitFor(async () => {
      const r = await admin.call('GetRun', { runId });
      return r.state === 'RUN_STATE_COMPLETED' ? r : undefined;
    }, 15_000, 'run completed');
    const rounds = (await admin.call('ListRounds', { runId })).rounds;
    expect(rounds.map((r) => [r.state, r.accepted])).toEqual([['ROUND_STATE_COMPLETED', 3]]);
    expect(run.privacy?.epsilonSpent).toBeCloseTo(epsilonAfter(1), 9);
    expect(rounds[0]!.epsilonAfter).toBeCloseTo(epsilonAfter(1), 9);
    expect((await ledgerOf(runId)).map((e) => [e.seq, e.kind, e.q, e.sigma, e.steps])).toEqual([[0, 'aggregate', 1, SIGMA, 1]]);
  }

  it('crash – killed right after the round\'s release is recorded, before the round opens: the restart opens it on the same entry, counted once', async () => {
    // Arrange: the coordinator dies once its first reservation is durable
    let s = await start('ledger-record');
    const died = exited(running!);
    const { runId } = await createRun(s.admin);

    // Act: the clients turn live, the driver reserves round 1 and kills itself; restart without the hook, play the round
    await live(s.clients);
    expect(await died).toBe('SIGKILL');
    s.close();
    expect(await ledgerOf(runId)).toHaveLength(1); // recorded before anything was published
    s = await start();
    try {
      await live(s.clients);
      await playRound(s.clients);

      // Assert
      await expectCountedOnce(s.admin, runId);
    } finally {
      s.close();
    }
  });

  it('crash – killed after the noisy aggregate is computed, before the round closes: the restart aggregates again without a second entry', async () => {
    // Arrange: the coordinator dies once its first aggregate is stored, unpublished
    let s = await start('aggregate');
    const died = exited(running!);
    const { runId } = await createRun(s.admin);

    // Act
    await live(s.clients);
    await playRound(s.clients);
    expect(await died).toBe('SIGKILL');
    s.close();
    expect(await ledgerOf(runId)).toHaveLength(1);
    s = await start();
    try {
      // Assert: no client acts again; the round left aggregating closes at restart
      await expectCountedOnce(s.admin, runId);
    } finally {
      s.close();
    }
  });

  it('crash – sample-level DP, killed after round 2 is charged, before it opens: the restart charges each round exactly once', async () => {
    // Arrange: the coordinator dies once round 2's charge is durable. Round 2 costs more than round 1 (the client with
    // the least data sets q = B/N, and client 0 shrinks from 100 to 25 examples during round 1), so the two entries
    // differ, the case a count of opened rounds could not tell apart.
    const steps = 2;
    let s = await start('ledger-record@2');
    const died = exited(running!);
    const { runId } = await s.admin.createRun(
      runJson(baseModel, {
        rounds: 2,
        min_clients: 3,
        sample_rate: 1,
        round_deadline_s: 60,
        local: { batch_size: 5, steps },
        privacy: { mode: 'sample', epsilon: 50, delta: DELTA, clip: 1, noise_multiplier: SIGMA },
      }),
    );

    // Act: round 1 is played; its close opens round 2, whose charge kills the process; restart without the hook
    await live(s.clients);
    const tasks = await pullRound(s.clients);
    await updateCapabilities(s.clients[0]!, { ...TEST_CAPABILITIES, numExamples: 25 });
    await pushRound(s.clients, tasks);
    expect(await died).toBe('SIGKILL');
    s.close();
    expect((await ledgerOf(runId)).map((e) => e.q)).toEqual([0.05, 0.2]); // round 2 charged before it opened
    s = await start();
    try {
      await live(s.clients);
      await playRound(s.clients, 2);

      // Assert: both rounds closed, one entry each, ε of exactly those two releases
      const run = await waitFor(async () => {
        const r = await s.admin.call('GetRun', { runId });
        return r.state === 'RUN_STATE_COMPLETED' ? r : undefined;
      }, 15_000, 'run completed');
      const rounds = (await s.admin.call('ListRounds', { runId })).rounds;
      expect(rounds.map((r) => [r.state, r.accepted])).toEqual([
        ['ROUND_STATE_COMPLETED', 3],
        ['ROUND_STATE_COMPLETED', 3],
      ]);
      expect((await ledgerOf(runId)).map((e) => [e.seq, e.round, e.kind, e.q, e.sigma, e.steps])).toEqual([
        [0, 1, 'aggregate', 0.05, SIGMA, steps],
        [1, 2, 'aggregate', 0.2, SIGMA, steps],
      ]);
      const reference = new RdpAccountant();
      reference.step(0.05, SIGMA, steps);
      reference.step(0.2, SIGMA, steps);
      expect(run.privacy?.epsilonSpent).toBeCloseTo(reference.getEpsilon(DELTA).epsilon, 9);
    } finally {
      s.close();
    }
  });
});
