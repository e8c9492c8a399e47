/**
 * The behaviour every Store implementation must have. sqlite.test.ts runs it against SQLite; a JetStream store
 * runs the same suite by passing its own harness.
 */
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  InvalidArgumentError,
  InvalidTransitionError,
  NotFoundError,
  StoreClosedError,
} from '../../src/store/errors.js';
import type { NewClient, Store } from '../../src/store/store.js';

export interface StoreHarness {
  readonly store: Store;
  /** Closes the store and opens the same data again. */
  reopen(): Promise<Store>;
  cleanup(): Promise<void>;
}

/** A clock the test moves by hand. */
export class ManualClock {
  constructor(public nowMs = 1_700_000_000_000) {}
  readonly read = (): number => this.nowMs;
}

export function hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function tokenHash(label: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(label).digest());
}

export function newClient(n: number): NewClient {
  const publicKey = new Uint8Array(32).fill(0);
  publicKey[0] = n & 0xff;
  publicKey[1] = (n >> 8) & 0xff;
  publicKey[31] = 7;
  return { id: `client-${n}`, name: `node ${n}`, publicKey, capabilities: { memoryMb: 512 + n, modes: ['backprop'] } };
}

/** A running run with `clients` enrolled clients and round 1 open. */
export async function runWithOpenRound(store: Store, runId = 'run-1', clients = 3): Promise<string[]> {
  const ids: string[] = [];
  for (let n = 0; n < clients; n++) {
    const outcome = await store.clients.enroll(newClient(n));
    if (outcome.ok) ids.push(outcome.client.id);
  }
  await store.runs.create({ id: runId, config: { rounds: 10 } });
  await store.runs.transition(runId, 'pending', 'running');
  await store.rounds.open({ runId, round: 1, sampledClientIds: ids, expectedClients: ids.length, deadlineAt: 1_800_000_000_000 });
  return ids;
}

function update(clientId: string, round = 1, numExamples = 10) {
  return { runId: 'run-1', round, clientId, sha256: hex(`${clientId}/${round}`), numExamples, metrics: { loss: 0.5 } };
}

export function describeStoreContract(name: string, make: (clock: ManualClock) => Promise<StoreHarness>): void {
  describe(`${name} store contract`, () => {
    let clock: ManualClock;
    let harness: StoreHarness;
    let store: Store;

    beforeEach(async () => {
      clock = new ManualClock();
      harness = await make(clock);
      store = harness.store;
    });
    afterEach(async () => {
      await harness.cleanup();
    });

    describe('clients', () => {
      it('store – a client round-trips with its key, capabilities and enrollment time', async () => {
        const input = newClient(1);
        const outcome = await store.clients.enroll(input);
        expect(outcome.ok).toBe(true);
        const read = await store.clients.get('client-1');
        expect(read).toEqual({ ...input, enrolledAt: clock.nowMs, revokedAt: null });
        expect(await store.clients.getByPublicKey(input.publicKey)).toEqual(read);
        expect(await store.clients.get('nobody')).toBeUndefined();
      });

      it('store – refuses a second enrollment of the same public key or id', async () => {
        await store.clients.enroll(newClient(1));
        await expect(store.clients.enroll({ ...newClient(1), id: 'other' })).rejects.toMatchObject({ what: 'public_key' });
        await expect(store.clients.enroll({ ...newClient(2), id: 'client-1' })).rejects.toMatchObject({ what: 'client_id' });
        await expect(store.clients.enroll({ ...newClient(3), id: 'client-1' })).rejects.toBeInstanceOf(ConflictError);
      });

      it('store – revokes a client once and hides it from the live list', async () => {
        await store.clients.enroll(newClient(1));
        await store.clients.enroll(newClient(2));
        clock.nowMs += 5;
        expect(await store.clients.revoke('client-1')).toBe(true);
        expect(await store.clients.revoke('client-1')).toBe(false);
        expect((await store.clients.get('client-1'))?.revokedAt).toBe(clock.nowMs);
        expect((await store.clients.list()).map((c) => c.id)).toEqual(['client-2']);
        expect((await store.clients.list({ includeRevoked: true })).map((c) => c.id)).toEqual(['client-1', 'client-2']);
        await expect(store.clients.revoke('ghost')).rejects.toBeInstanceOf(NotFoundError);
      });

      it('store – replaces a client’s capabilities', async () => {
        await store.clients.enroll(newClient(1));
        await store.clients.updateCapabilities('client-1', { memoryMb: 64, backends: ['wasm'] });
        expect((await store.clients.get('client-1'))?.capabilities).toEqual({ memoryMb: 64, backends: ['wasm'] });
        await expect(store.clients.updateCapabilities('ghost', {})).rejects.toBeInstanceOf(NotFoundError);
      });
    });

    describe('join tokens', () => {
      it('store – counts token uses down to exhaustion', async () => {
        await store.joinTokens.create({ hash: tokenHash('t'), expiresAt: clock.nowMs + 1000, uses: 2 });
        expect(await store.joinTokens.redeem(tokenHash('t'), clock.nowMs)).toEqual({ ok: true, usesLeft: 1 });
        expect(await store.joinTokens.redeem(tokenHash('t'), clock.nowMs)).toEqual({ ok: true, usesLeft: 0 });
        expect(await store.joinTokens.redeem(tokenHash('t'), clock.nowMs)).toEqual({ ok: false, reason: 'exhausted' });
        expect((await store.joinTokens.get(tokenHash('t')))?.usesLeft).toBe(0);
      });

      it('store – refuses an expired or unknown token without spending it', async () => {
        const expiresAt = clock.nowMs + 1000;
        await store.joinTokens.create({ hash: tokenHash('t'), expiresAt, uses: 1 });
        expect(await store.joinTokens.redeem(tokenHash('t'), expiresAt)).toEqual({ ok: false, reason: 'expired' });
        expect((await store.joinTokens.get(tokenHash('t')))?.usesLeft).toBe(1);
        expect(await store.joinTokens.redeem(tokenHash('other'), clock.nowMs)).toEqual({ ok: false, reason: 'unknown' });
      });

      it('store – enrollment spends a use, and a failed enrollment gives it back', async () => {
        await store.joinTokens.create({ hash: tokenHash('t'), expiresAt: clock.nowMs + 1000, uses: 2 });
        const join = { hash: tokenHash('t'), nowMs: clock.nowMs };
        expect((await store.clients.enroll(newClient(1), join)).ok).toBe(true);
        await expect(store.clients.enroll({ ...newClient(1), id: 'again' }, join)).rejects.toBeInstanceOf(ConflictError);
        expect((await store.joinTokens.get(tokenHash('t')))?.usesLeft).toBe(1);
        expect(await store.clients.enroll(newClient(2), { hash: tokenHash('nope'), nowMs: clock.nowMs })).toEqual({
          ok: false,
          reason: 'unknown',
        });
        expect(await store.clients.get('client-2')).toBeUndefined();
      });

      it('store – prunes expired and used-up tokens and revokes one by hash', async () => {
        await store.joinTokens.create({ hash: tokenHash('old'), expiresAt: clock.nowMs + 10, uses: 1 });
        await store.joinTokens.create({ hash: tokenHash('used'), expiresAt: clock.nowMs + 1000, uses: 1 });
        await store.joinTokens.create({ hash: tokenHash('live'), expiresAt: clock.nowMs + 1000, uses: 1 });
        await store.joinTokens.redeem(tokenHash('used'), clock.nowMs);
        expect(await store.joinTokens.prune(clock.nowMs + 10)).toBe(2);
        expect(await store.joinTokens.revoke(tokenHash('live'))).toBe(true);
        expect(await store.joinTokens.get(tokenHash('live'))).toBeUndefined();
      });
    });

    describe('nonces', () => {
      it('store – inserts a nonce once per client and reports a repeat', async () => {
        await store.clients.enroll(newClient(1));
        await store.clients.enroll(newClient(2));
        const nonce = new Uint8Array(16).fill(9);
        expect(await store.nonces.insertIfAbsent('client-1', nonce, clock.nowMs)).toBe(true);
        expect(await store.nonces.insertIfAbsent('client-1', nonce, clock.nowMs + 1)).toBe(false);
        expect(await store.nonces.insertIfAbsent('client-2', nonce, clock.nowMs)).toBe(true);
      });

      it('store – prunes nonces older than the cutoff so they could be inserted again', async () => {
        await store.clients.enroll(newClient(1));
        const old = new Uint8Array(16).fill(1);
        const recent = new Uint8Array(16).fill(2);
        await store.nonces.insertIfAbsent('client-1', old, 1000);
        await store.nonces.insertIfAbsent('client-1', recent, 5000);
        expect(await store.nonces.pruneBefore(5000)).toBe(1);
        expect(await store.nonces.insertIfAbsent('client-1', old, 6000)).toBe(true);
        expect(await store.nonces.insertIfAbsent('client-1', recent, 6000)).toBe(false);
      });

      it('store – refuses a nonce of an unknown client', async () => {
        await expect(store.nonces.insertIfAbsent('ghost', new Uint8Array(16), 1)).rejects.toBeInstanceOf(NotFoundError);
      });
    });

    describe('runs', () => {
      it('store – a run round-trips and starts pending at round 0', async () => {
        const run = await store.runs.create({ id: 'run-1', config: { rounds: 3, privacy: { epsilon: 1 } } });
        expect(run).toEqual({
          id: 'run-1',
          config: { rounds: 3, privacy: { epsilon: 1 } },
          state: 'pending',
          currentRound: 0,
          globalAdapterSha: null,
          message: null,
          createdAt: clock.nowMs,
          updatedAt: clock.nowMs,
        });
        expect(await store.runs.get('run-1')).toEqual(run);
        await expect(store.runs.create({ id: 'run-1', config: {} })).rejects.toMatchObject({ what: 'run_id' });
      });

      it('store – run transitions are compare-and-set and refuse impossible edges', async () => {
        await store.runs.create({ id: 'run-1', config: {} });
        expect(await store.runs.transition('run-1', 'pending', 'running')).toBe(true);
        expect(await store.runs.transition('run-1', 'pending', 'running')).toBe(false);
        await expect(store.runs.transition('run-1', 'completed', 'running')).rejects.toBeInstanceOf(InvalidTransitionError);
        await expect(store.runs.transition('ghost', 'pending', 'running')).rejects.toBeInstanceOf(NotFoundError);
        expect(await store.runs.transition('run-1', 'running', 'budget_exhausted', { message: 'ε 2.1 > 2' })).toBe(true);
        expect((await store.runs.list({ states: ['budget_exhausted'] })).map((r) => [r.id, r.message])).toEqual([['run-1', 'ε 2.1 > 2']]);
        expect(await store.runs.transition('run-1', 'budget_exhausted', 'running')).toBe(true);
        expect((await store.runs.get('run-1'))?.message).toBeNull();
        expect(await store.runs.transition('run-1', 'running', 'stopped', { message: 'operator' })).toBe(true);
        await expect(store.runs.transition('run-1', 'stopped', 'running')).rejects.toThrow(/stopped is final/);
      });

      it('store – keeps one strategy state document per run', async () => {
        await store.runs.create({ id: 'run-1', config: {} });
        expect(await store.runs.getStrategyState('run-1')).toBeUndefined();
        await store.runs.putStrategyState('run-1', { m: [0.1, 0.2], t: 1 });
        await store.runs.putStrategyState('run-1', { m: [0.3], t: 2 });
        expect(await store.runs.getStrategyState('run-1')).toEqual({ m: [0.3], t: 2 });
        await expect(store.runs.putStrategyState('ghost', {})).rejects.toBeInstanceOf(NotFoundError);
      });

      it('store – a global adapter must be a stored blob', async () => {
        await store.runs.create({ id: 'run-1', config: {} });
        await expect(store.runs.setGlobalAdapter('run-1', hex('missing'))).rejects.toMatchObject({ entity: 'blob' });
        const { sha256 } = await store.blobs.put(new Uint8Array([1, 2, 3]));
        await store.runs.setGlobalAdapter('run-1', sha256);
        expect((await store.runs.get('run-1'))?.globalAdapterSha).toBe(sha256);
      });
    });

    describe('rounds and updates', () => {
      it('store – opening a round records the adapter before it and advances the run', async () => {
        const { sha256 } = await store.blobs.put(new Uint8Array([4]));
        await store.runs.create({ id: 'run-0', config: {}, globalAdapterSha: sha256 });
        await expect(
          store.rounds.open({ runId: 'run-0', round: 1, sampledClientIds: [], expectedClients: 0, deadlineAt: 1 }),
        ).rejects.toBeInstanceOf(InvalidTransitionError);
        await store.runs.transition('run-0', 'pending', 'running');
        const round = await store.rounds.open({ runId: 'run-0', round: 1, sampledClientIds: ['a', 'b'], expectedClients: 1.5, deadlineAt: 99 });
        expect(round).toMatchObject({ state: 'open', sampledClientIds: ['a', 'b'], expectedClients: 1.5, adapterShaBefore: sha256 });
        expect((await store.runs.get('run-0'))?.currentRound).toBe(1);
        await expect(
          store.rounds.open({ runId: 'run-0', round: 3, sampledClientIds: [], expectedClients: 0, deadlineAt: 1 }),
        ).rejects.toMatchObject({ what: 'round' });
      });

      it('store – a round moves open → aggregating → closed, and closing moves the run’s adapter', async () => {
        await runWithOpenRound(store);
        expect(await store.rounds.close('run-1', 1, { adapterShaAfter: null, metrics: {} })).toBe(false);
        expect(await store.rounds.transition('run-1', 1, 'open', 'aggregating')).toBe(true);
        expect(await store.rounds.transition('run-1', 1, 'open', 'aggregating')).toBe(false);
        const { sha256 } = await store.blobs.put(new Uint8Array([1, 1]));
        clock.nowMs += 7;
        expect(await store.rounds.close('run-1', 1, { adapterShaAfter: sha256, metrics: { norm: 0.3 } })).toBe(true);
        expect(await store.rounds.get('run-1', 1)).toMatchObject({ state: 'closed', closedAt: clock.nowMs, adapterShaAfter: sha256, metrics: { norm: 0.3 } });
        expect((await store.runs.get('run-1'))?.globalAdapterSha).toBe(sha256);
        await expect(store.rounds.transition('run-1', 1, 'closed', 'open')).rejects.toBeInstanceOf(InvalidTransitionError);
      });

      it('store – a round reaches closed only through close()', async () => {
        await runWithOpenRound(store);
        await store.rounds.transition('run-1', 1, 'open', 'aggregating');
        await expect(store.rounds.transition('run-1', 1, 'aggregating', 'closed')).rejects.toBeInstanceOf(InvalidTransitionError);
      });

      it('store – failing a round keeps the reason and lets the next round open', async () => {
        await runWithOpenRound(store);
        await expect(
          store.rounds.open({ runId: 'run-1', round: 2, sampledClientIds: [], expectedClients: 0, deadlineAt: 1 }),
        ).rejects.toMatchObject({ what: 'round' });
        expect(await store.rounds.fail('run-1', 1, 'too few updates')).toBe(true);
        expect(await store.rounds.fail('run-1', 1, 'again')).toBe(false);
        expect((await store.rounds.get('run-1', 1))?.metrics).toEqual({ failure: 'too few updates' });
        await store.rounds.open({ runId: 'run-1', round: 2, sampledClientIds: [], expectedClients: 0, deadlineAt: 1 });
        expect((await store.rounds.list('run-1')).map((r) => [r.round, r.state])).toEqual([
          [1, 'failed'],
          [2, 'open'],
        ]);
      });

      it('store – merges metrics into a round', async () => {
        await runWithOpenRound(store);
        await store.rounds.mergeMetrics('run-1', 1, { loss: 1 });
        const merged = await store.rounds.mergeMetrics('run-1', 1, { accuracy: 0.9 });
        expect(merged.metrics).toEqual({ loss: 1, accuracy: 0.9 });
      });

      it('store – an accepted update round-trips and bumps the round counters', async () => {
        const [a, b] = await runWithOpenRound(store);
        const first = await store.updates.put(update(a!, 1, 10));
        expect(first).toEqual({ duplicate: false, record: { ...update(a!, 1, 10), receivedAt: clock.nowMs } });
        await store.updates.put(update(b!, 1, 5));
        expect(await store.updates.get('run-1', 1, a!)).toEqual(first.record);
        expect((await store.updates.list('run-1', 1)).map((u) => u.clientId).sort()).toEqual([a, b].sort());
        expect(await store.rounds.get('run-1', 1)).toMatchObject({ updatesReceived: 2, examplesReceived: 15 });
      });

      it('store – a retried upload is recognised as a duplicate and counted once', async () => {
        const [a] = await runWithOpenRound(store);
        const first = await store.updates.put(update(a!));
        clock.nowMs += 100;
        const retry = await store.updates.put({ ...update(a!), numExamples: 99 });
        expect(retry).toEqual({ duplicate: true, record: first.record });
        expect(await store.rounds.get('run-1', 1)).toMatchObject({ updatesReceived: 1, examplesReceived: 10 });
        await store.rounds.transition('run-1', 1, 'open', 'aggregating');
        expect((await store.updates.put(update(a!))).duplicate).toBe(true);
      });

      it('store – refuses a new update for a round that is not open, or from an unknown client', async () => {
        const [a, b] = await runWithOpenRound(store);
        await store.updates.put(update(a!));
        await expect(store.updates.put(update('ghost'))).rejects.toBeInstanceOf(NotFoundError);
        await store.rounds.transition('run-1', 1, 'open', 'aggregating');
        await expect(store.updates.put(update(b!))).rejects.toBeInstanceOf(InvalidTransitionError);
        await expect(store.updates.put(update(b!, 7))).rejects.toBeInstanceOf(NotFoundError);
      });
    });

    describe('blobs', () => {
      it('store – blobs are content-addressed and a second put is a no-op', async () => {
        const bytes = new Uint8Array([0, 1, 2, 250]);
        const first = await store.blobs.put(bytes);
        expect(first).toEqual({ sha256: hex(bytes), created: true });
        expect(await store.blobs.put(bytes)).toEqual({ sha256: hex(bytes), created: false });
        expect(await store.blobs.get(first.sha256)).toEqual(bytes);
        expect(await store.blobs.has(first.sha256)).toBe(true);
        expect(await store.blobs.get(hex('absent'))).toBeUndefined();
        expect(await store.blobs.get(hex(new Uint8Array(0)))).toBeUndefined();
        expect((await store.blobs.put(new Uint8Array(0))).created).toBe(true);
      });
    });

    describe('privacy', () => {
      /** Entry `seq` of a run, paying for round seq + 1 unless told otherwise. */
      const entry = (runId: string, seq: number, q = 0.1, round: number | null = seq + 1) =>
        ({ runId, seq, round, kind: 'aggregate', q, sigma: 1.1, steps: 1, at: 1_700_000_000_000 + seq }) as const;

      it('store – ledger entries round-trip in seq order per run, with the round they pay for', async () => {
        await store.runs.create({ id: 'run-1', config: {} });
        await store.runs.create({ id: 'run-2', config: {} });
        await store.ledger.append(entry('run-1', 0));
        await store.ledger.append(entry('run-2', 0));
        await store.ledger.append({ ...entry('run-1', 1), kind: 'clip_count', sigma: 20, steps: 3 });
        await store.ledger.append(entry('run-1', 2, 0.1, null));
        expect(await store.ledger.list('run-1')).toEqual([
          entry('run-1', 0),
          { ...entry('run-1', 1), kind: 'clip_count', sigma: 20, steps: 3 },
          entry('run-1', 2, 0.1, null),
        ]);
        expect(await store.ledger.list('run-3')).toEqual([]);
      });

      it('store – the ledger appends only at the run\'s next seq, so two writers cannot both spend', async () => {
        await store.runs.create({ id: 'run-1', config: {} });
        await store.ledger.append(entry('run-1', 0));
        await expect(store.ledger.append(entry('run-1', 0, 0.5, 7))).rejects.toMatchObject({ what: 'ledger_seq' });
        await expect(store.ledger.append(entry('run-1', 2))).rejects.toMatchObject({ what: 'ledger_seq' });
        expect(await store.ledger.list('run-1')).toEqual([entry('run-1', 0)]);
      });

      it('store – a second write of a recorded (run, round, kind) returns the recorded entry and adds none', async () => {
        // Prepare
        await store.runs.create({ id: 'run-1', config: {} });
        const recorded = await store.ledger.append(entry('run-1', 0));
        // Execute: the same charge again, as a redo computes it (next seq, a later time), and as a retried append
        const again = await store.ledger.append({ ...entry('run-1', 1, 0.1, 1), at: 1_800_000_000_000 });
        const retried = await store.ledger.append(entry('run-1', 0));
        // Assert
        expect(recorded).toEqual(entry('run-1', 0));
        expect(again).toEqual(recorded);
        expect(retried).toEqual(recorded);
        expect(await store.ledger.list('run-1')).toEqual([recorded]);
      });

      it('store – another release under a recorded (run, round, kind) is a conflict and records nothing', async () => {
        await store.runs.create({ id: 'run-1', config: {} });
        await store.ledger.append(entry('run-1', 0));
        await expect(store.ledger.append(entry('run-1', 1, 0.2, 1))).rejects.toMatchObject({ code: 'conflict', what: 'ledger_tag' });
        await expect(store.ledger.append({ ...entry('run-1', 1, 0.1, 1), steps: 2 })).rejects.toThrow(
          /round 1 of run run-1 is already charged for 1 aggregate release \(q=0\.1, σ=1\.1\)/,
        );
        // The same round's other kind of release is another tag
        await store.ledger.append({ ...entry('run-1', 1, 0.1, 1), kind: 'clip_count' });
        expect((await store.ledger.list('run-1')).map((e) => [e.seq, e.round, e.kind])).toEqual([
          [0, 1, 'aggregate'],
          [1, 1, 'clip_count'],
        ]);
      });

      it('store – the ledger refuses out-of-range parameters and unknown runs', async () => {
        await store.runs.create({ id: 'run-1', config: {} });
        await expect(store.ledger.append(entry('run-1', 0, 1.5))).rejects.toBeInstanceOf(InvalidArgumentError);
        await expect(store.ledger.append({ ...entry('run-1', 0), sigma: Number.POSITIVE_INFINITY })).rejects.toBeInstanceOf(
          InvalidArgumentError,
        );
        await expect(store.ledger.append(entry('run-1', 0, 0.1, 0))).rejects.toThrow(/ledger round/);
        await expect(store.ledger.append(entry('ghost', 0))).rejects.toBeInstanceOf(NotFoundError);
      });

      it('store – budget changes are kept with the previous values for audit', async () => {
        await store.runs.create({ id: 'run-1', config: {} });
        await store.budgets.set('run-1', { epsilon: 1, delta: 1e-5 }, { actor: 'config', reason: 'initial' });
        clock.nowMs += 10;
        const raised = await store.budgets.set('run-1', { epsilon: 2, delta: 1e-5 }, { actor: 'admin', reason: 'approved by DPO' });
        expect(await store.budgets.get('run-1')).toEqual(raised);
        expect((await store.budgets.history('run-1')).map((c) => [c.seq, c.epsilon, c.previousEpsilon, c.actor, c.changedAt])).toEqual([
          [1, 1, null, 'config', clock.nowMs - 10],
          [2, 2, 1, 'admin', clock.nowMs],
        ]);
        await expect(store.budgets.set('run-1', { epsilon: 0, delta: 1e-5 }, { actor: 'a', reason: '' })).rejects.toBeInstanceOf(
          InvalidArgumentError,
        );
        await expect(store.budgets.set('run-1', { epsilon: 1, delta: 1 }, { actor: 'a', reason: '' })).rejects.toBeInstanceOf(
          InvalidArgumentError,
        );
      });
    });

    describe('unlearning requests', () => {
      beforeEach(async () => {
        await store.clients.enroll(newClient(1));
        await store.clients.enroll(newClient(2));
        await store.runs.create({ id: 'run-1', config: {} });
        await store.runs.create({ id: 'run-2', config: {} });
      });

      it('store – a request goes queued → assigned → training → verifying → active with its adapter', async () => {
        const created = await store.unlearning.create({
          id: 'u1',
          runId: 'run-1',
          clientIds: ['client-1'],
          selector: { exampleIds: ['e1', 'e2'], targetPolicy: 'random_wrong_label' },
          reason: 'GDPR art. 17',
        });
        expect(created).toEqual({
          id: 'u1',
          runId: 'run-1',
          index: 1,
          clientIds: ['client-1'],
          selector: { exampleIds: ['e1', 'e2'], targetPolicy: 'random_wrong_label' },
          reason: 'GDPR art. 17',
          state: 'queued',
          failureReason: null,
          metrics: {},
          createdAt: clock.nowMs,
          updatedAt: clock.nowMs,
          completedAt: null,
          resultAdapterSha: null,
        });
        for (const [from, to] of [['queued', 'assigned'], ['assigned', 'training'], ['training', 'verifying']] as const) {
          expect(await store.unlearning.transition('u1', from, to)).toBe(true);
        }
        await expect(store.unlearning.transition('u1', 'verifying', 'active')).rejects.toBeInstanceOf(InvalidArgumentError);
        const { sha256 } = await store.blobs.put(new Uint8Array([8]));
        clock.nowMs += 3;
        expect(
          await store.unlearning.transition('u1', 'verifying', 'active', { resultAdapterSha: sha256, metrics: { forgetAccuracy: 0.1 } }),
        ).toBe(true);
        expect(await store.unlearning.get('u1')).toMatchObject({
          state: 'active',
          resultAdapterSha: sha256,
          completedAt: clock.nowMs,
          metrics: { forgetAccuracy: 0.1 },
        });
        await expect(store.unlearning.transition('u1', 'active', 'queued')).rejects.toBeInstanceOf(InvalidTransitionError);
      });

      it('store – requests are numbered 1, 2, ... per run', async () => {
        const base = { clientIds: [], selector: {}, reason: '' };
        await store.unlearning.create({ ...base, id: 'a', runId: 'run-1' });
        await store.unlearning.create({ ...base, id: 'b', runId: 'run-2' });
        await store.unlearning.create({ ...base, id: 'c', runId: 'run-1' });
        expect((await store.unlearning.list({ runId: 'run-1' })).map((r) => [r.id, r.index])).toEqual([
          ['a', 1],
          ['c', 2],
        ]);
        expect((await store.unlearning.get('b'))?.index).toBe(1);
      });

      it('store – a failed request keeps its reason; lost races return false', async () => {
        const base = { runId: 'run-1', selector: {}, reason: '' };
        await store.unlearning.create({ ...base, id: 'u1', clientIds: ['client-1'] });
        await store.unlearning.create({ ...base, id: 'u2', clientIds: ['client-1', 'client-2'] });
        expect(await store.unlearning.transition('u1', 'assigned', 'training')).toBe(false);
        expect(await store.unlearning.transition('u1', 'queued', 'failed', { failureReason: 'no data' })).toBe(true);
        expect((await store.unlearning.get('u1'))?.failureReason).toBe('no data');
        expect((await store.unlearning.list({ states: ['queued'] })).map((r) => r.id)).toEqual(['u2']);
        expect((await store.unlearning.list({ clientId: 'client-2' })).map((r) => r.id)).toEqual(['u2']);
        await expect(store.unlearning.create({ ...base, id: 'u2', clientIds: [] })).rejects.toBeInstanceOf(ConflictError);
        await expect(store.unlearning.create({ ...base, id: 'u3', clientIds: ['ghost'] })).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.unlearning.create({ ...base, id: 'u4', runId: 'ghost', clientIds: [] })).rejects.toBeInstanceOf(
          NotFoundError,
        );
        await expect(store.unlearning.transition('ghost', 'queued', 'assigned')).rejects.toBeInstanceOf(NotFoundError);
      });
    });

    describe('validation and lifecycle', () => {
      it('store – rejects bad arguments as InvalidArgumentError promises, naming the field', async () => {
        const bad = store.clients.enroll({ ...newClient(1), publicKey: new Uint8Array(31) });
        await expect(bad).rejects.toBeInstanceOf(InvalidArgumentError);
        await expect(bad).rejects.toThrow(/public key must be exactly 32 bytes/);
        await expect(store.runs.create({ id: '', config: {} })).rejects.toThrow(/run id/);
        await expect(store.runs.create({ id: 'r', config: { x: Number.NaN } })).rejects.toThrow(/run config\.x must be a finite number/);
        await expect(store.runs.create({ id: 'r', config: { d: new Date() } as never })).rejects.toBeInstanceOf(InvalidArgumentError);
        await expect(store.blobs.get('ABC')).rejects.toBeInstanceOf(InvalidArgumentError);
      });

      it('store – data survives closing and reopening', async () => {
        const [a] = await runWithOpenRound(store);
        await store.updates.put(update(a!));
        await store.ledger.append({ runId: 'run-1', seq: 0, round: 1, kind: 'aggregate', q: 1, sigma: 1, steps: 1, at: 5 });
        store = await harness.reopen();
        expect((await store.updates.get('run-1', 1, a!))?.numExamples).toBe(10);
        expect(await store.ledger.list('run-1')).toHaveLength(1);
        expect((await store.rounds.get('run-1', 1))?.updatesReceived).toBe(1);
      });

      it('store – close is idempotent and every later call rejects with StoreClosedError', async () => {
        store.close();
        store.close();
        expect(store.isClosed).toBe(true);
        await expect(store.runs.get('run-1')).rejects.toBeInstanceOf(StoreClosedError);
        await expect(store.runs.create({ id: '', config: {} })).rejects.toBeInstanceOf(StoreClosedError);
        await expect(store.ledger.append({ runId: 'r', seq: 0, round: 1, kind: 'aggregate', q: 1, sigma: 1, steps: 1, at: 0 })).rejects.toThrow(
          /store is closed/,
        );
        store[Symbol.dispose]();
      });
    });
  });
}
