/**
 * The NATS JetStream store against the shared contract (the same suite as SQLite) and the behaviour only a shared,
 * networked store has: two processes racing on one run, half-finished writes left by a crash, a server outage.
 * Needs nats-server with JetStream on NATS_URL (default 127.0.0.1:4222), as CI starts it; each test gets its own
 * bucket prefix and deletes its buckets afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, InvalidTransitionError, NotFoundError } from '../../src/store/errors.js';
import { NatsUnavailableError } from '../../src/store/nats/errors.js';
import { openNatsStore, type NatsStore, type NatsStoreConfig } from '../../src/store/nats/store.js';
import { eventually, freePort, startNatsServer, stopProcess } from '../cluster/helpers.js';
import { describeStoreContract, hex, ManualClock, newClient, runWithOpenRound } from './contract.js';

const SERVERS = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** A bucket prefix no other test (or test run) uses. */
function freshPrefix(): string {
  return `lethe_test_${process.pid}_${randomBytes(4).toString('hex')}`;
}

function open(prefix: string, overrides: Partial<NatsStoreConfig> = {}): Promise<NatsStore> {
  return openNatsStore({ servers: SERVERS, bucketPrefix: prefix, ...overrides });
}

/** Deletes a prefix's buckets even when the store that used them is closed. */
async function destroy(prefix: string): Promise<void> {
  await (await open(prefix)).destroy();
}

describeStoreContract('nats', async (clock) => {
  const prefix = freshPrefix();
  let current = await open(prefix, { clock: clock.read });
  return {
    get store() {
      return current;
    },
    async reopen() {
      current.close();
      current = await open(prefix, { clock: clock.read });
      return current;
    },
    async cleanup() {
      current.close();
      await destroy(prefix);
    },
  };
});

describe('nats store', () => {
  let prefix: string;
  const stores: NatsStore[] = [];
  beforeEach(() => {
    prefix = freshPrefix();
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) s.close();
    await destroy(prefix);
  });

  async function pair(clock = new ManualClock()): Promise<[NatsStore, NatsStore]> {
    const a = await open(prefix, { clock: clock.read });
    const b = await open(prefix, { clock: clock.read });
    stores.push(a, b);
    return [a, b];
  }

  it('nats store – two coordinators racing on one round: exactly one compare-and-set wins', async () => {
    const [a, b] = await pair();
    await runWithOpenRound(a);
    const results = await Promise.all([
      a.rounds.transition('run-1', 1, 'open', 'aggregating'),
      b.rounds.transition('run-1', 1, 'open', 'aggregating'),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('nats store – updates put concurrently through two stores are each counted exactly once', async () => {
    const [a, b] = await pair();
    const clients = 12;
    const ids = await runWithOpenRound(a, 'run-1', clients);
    const put = (s: NatsStore, id: string) =>
      s.updates.put({ runId: 'run-1', round: 1, clientId: id, sha256: hex(id), numExamples: 3, metrics: {} });
    // Every client uploads through both coordinators at once (a retried upload landing on the other one).
    const results = await Promise.all(ids.flatMap((id) => [put(a, id), put(b, id)]));
    expect(results.filter((r) => !r.duplicate)).toHaveLength(clients);
    expect(await b.rounds.get('run-1', 1)).toMatchObject({ updatesReceived: clients, examplesReceived: 3 * clients });
    expect((await a.updates.list('run-1', 1)).map((u) => u.clientId).sort()).toEqual([...ids].sort());
  });

  it('nats store – uploads arriving together are counted in a few run-document writes, not one each', async () => {
    const [a] = await pair();
    const ids = await runWithOpenRound(a, 'run-1', 40);
    const runs = await (a as unknown as { nc: import('nats').NatsConnection }).nc.jetstream().views.kv(`${prefix}_runs`);
    const key = Buffer.from('run-1').toString('base64url');
    const before = (await runs.get(key))!.revision;
    await Promise.all(ids.map((id) => a.updates.put({ runId: 'run-1', round: 1, clientId: id, sha256: hex(id), numExamples: 1, metrics: {} })));
    const writes = (await runs.get(key))!.revision - before;
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThan(ids.length / 4);
    expect(await a.rounds.get('run-1', 1)).toMatchObject({ updatesReceived: 40, examplesReceived: 40 });
  });

  it('nats store – an update racing the round into aggregating is either counted or refused, never half-stored', async () => {
    const [a, b] = await pair();
    const ids = await runWithOpenRound(a, 'run-1', 8);
    const puts = ids.map((id) =>
      b.updates.put({ runId: 'run-1', round: 1, clientId: id, sha256: hex(id), numExamples: 1, metrics: {} }).then(
        () => 'accepted',
        (err: unknown) => (err instanceof InvalidTransitionError ? 'refused' : Promise.reject(err)),
      ),
    );
    const [closed, ...outcomes] = await Promise.all([a.rounds.transition('run-1', 1, 'open', 'aggregating'), ...puts]);
    expect(closed).toBe(true);
    const accepted = outcomes.filter((o) => o === 'accepted').length;
    expect(await a.rounds.get('run-1', 1)).toMatchObject({ updatesReceived: accepted });
    expect(await a.updates.list('run-1', 1)).toHaveLength(accepted);
    for (const [i, id] of ids.entries()) {
      expect((await a.updates.get('run-1', 1, id)) !== undefined).toBe(outcomes[i] === 'accepted');
    }
  });

  it('nats store – two coordinators appending the same ledger seq: exactly one spends', async () => {
    const [a, b] = await pair();
    await a.runs.create({ id: 'run-1', config: {} });
    const entry = { runId: 'run-1', seq: 0, round: 1, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 1 } as const;
    const outcomes = await Promise.allSettled([a.ledger.append(entry), b.ledger.append({ ...entry, round: 2, q: 0.2 })]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(outcomes.find((o) => o.status === 'rejected')).toMatchObject({ reason: { what: 'ledger_seq' } });
    expect(await b.ledger.list('run-1')).toHaveLength(1);
  });

  it('nats store – two coordinators charging one round at once: one entry, both told so; another release conflicts', async () => {
    // Prepare
    const [a, b] = await pair();
    await a.runs.create({ id: 'run-1', config: {} });
    const entry = { runId: 'run-1', seq: 0, round: 1, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 1 } as const;
    // Execute: the same charge through both at once, then round 2 at once with different releases
    const same = await Promise.all([a.ledger.append(entry), b.ledger.append({ ...entry, at: 2 })]);
    const next = { ...entry, seq: 1, round: 2 };
    const differing = await Promise.allSettled([a.ledger.append(next), b.ledger.append({ ...next, q: 0.3 })]);
    // Assert
    expect(same[1]).toEqual(same[0]);
    expect(differing.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(differing.find((o) => o.status === 'rejected')).toMatchObject({ reason: { code: 'conflict', what: 'ledger_tag' } });
    expect((await b.ledger.list('run-1')).map((e) => e.round)).toEqual([1, 2]);
  });

  it('nats store – ledger entries written before entries named their round read back untagged and count', async () => {
    // Prepare: an entry as an older build stored it, without a round
    const [a] = await pair();
    await a.runs.create({ id: 'run-1', config: {} });
    const kv = await (a as unknown as { nc: import('nats').NatsConnection }).nc.jetstream().views.kv(`${prefix}_ledger`);
    const legacy = { runId: 'run-1', seq: 0, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 1 } as const;
    await kv.create(`${Buffer.from('run-1').toString('base64url')}.0`, JSON.stringify(legacy));
    // Execute
    const charged = await a.ledger.append({ ...legacy, seq: 1, round: 1, at: 2 });
    // Assert
    expect(await a.ledger.list('run-1')).toEqual([{ ...legacy, round: null }, charged]);
  });

  it('nats store – concurrent unlearning requests of one run get distinct indexes 1..n', async () => {
    const [a, b] = await pair();
    await a.runs.create({ id: 'run-1', config: {} });
    const base = { runId: 'run-1', clientIds: [], selector: {}, reason: '' };
    await Promise.all(['u1', 'u2', 'u3', 'u4'].map((id, i) => (i % 2 === 0 ? a : b).unlearning.create({ ...base, id })));
    const indexes = (await a.unlearning.list({ runId: 'run-1' })).map((r) => r.index).sort();
    expect(indexes).toEqual([1, 2, 3, 4]);
  });

  it('nats store – closing a round moves the adapter even when another coordinator changed the run meanwhile', async () => {
    const [a, b] = await pair();
    await runWithOpenRound(a);
    await a.rounds.transition('run-1', 1, 'open', 'aggregating');
    const { sha256 } = await a.blobs.put(new Uint8Array([9, 9]));
    const [closed] = await Promise.all([
      a.rounds.close('run-1', 1, { adapterShaAfter: sha256, metrics: { n: 1 } }),
      b.runs.putStrategyState('run-1', { t: 1 }),
      b.rounds.mergeMetrics('run-1', 1, { eval: 0.5 }),
    ]);
    expect(closed).toBe(true);
    expect((await b.runs.get('run-1'))?.globalAdapterSha).toBe(sha256);
    expect((await b.rounds.get('run-1', 1))?.metrics).toEqual({ n: 1, eval: 0.5 });
  });

  it('nats store – finished rounds stay readable and mergeable after the next round opens', async () => {
    const [a] = await pair();
    await runWithOpenRound(a);
    await a.rounds.fail('run-1', 1, 'too few');
    await a.rounds.open({ runId: 'run-1', round: 2, sampledClientIds: [], expectedClients: 0, deadlineAt: 1 });
    expect(await a.rounds.mergeMetrics('run-1', 1, { late: true })).toMatchObject({ state: 'failed', metrics: { failure: 'too few', late: true } });
    expect(await a.rounds.transition('run-1', 1, 'open', 'aggregating')).toBe(false);
    expect(await a.rounds.fail('run-1', 1, 'again')).toBe(false);
    await expect(a.updates.put({ runId: 'run-1', round: 1, clientId: 'client-0', sha256: hex('x'), numExamples: 1, metrics: {} })).rejects.toBeInstanceOf(
      InvalidTransitionError,
    );
    expect((await a.rounds.list('run-1')).map((r) => [r.round, r.state])).toEqual([
      [1, 'failed'],
      [2, 'open'],
    ]);
  });

  it('nats store – a client enrollment cut off by a crash is invisible and its id can be enrolled again', async () => {
    const [a] = await pair();
    const store = await open(prefix, { pendingGraceMs: 0 });
    stores.push(store);
    // What a crash between the two writes of an enrollment leaves: a pending document and no key index entry.
    const js = (store as unknown as { nc: import('nats').NatsConnection }).nc.jetstream();
    const kv = await js.views.kv(`${prefix}_clients`);
    const orphan = { ...newClient(1), publicKey: Buffer.from(newClient(1).publicKey).toString('base64'), enrolledAt: 1, revokedAt: null, pending: true };
    await kv.put(Buffer.from('client-1').toString('base64url'), JSON.stringify(orphan));
    expect(await a.clients.get('client-1')).toBeUndefined();
    expect(await a.clients.list()).toEqual([]);
    await expect(a.nonces.insertIfAbsent('client-1', new Uint8Array(8), 1)).rejects.toBeInstanceOf(NotFoundError);
    expect((await store.clients.enroll(newClient(1))).ok).toBe(true);
    expect((await a.clients.get('client-1'))?.name).toBe('node 1');
  });

  it('nats store – blobs are ordinary object-store objects: nats.js reads them, and bytes that do not match their name are refused', async () => {
    const [a] = await pair();
    const os = await (a as unknown as { nc: import('nats').NatsConnection }).nc.jetstream().views.os(`${prefix}_blobs`);
    const bytes = new Uint8Array(2_500_000).map((_, i) => (i * 7) % 251); // three chunks
    const { sha256 } = await a.blobs.put(bytes);
    expect(Buffer.from((await os.getBlob(sha256))!).equals(Buffer.from(bytes))).toBe(true); // nats.js checks the digest
    expect(Buffer.from((await a.blobs.get(sha256))!).equals(Buffer.from(bytes))).toBe(true);
    expect(await a.blobs.get(hex('absent'))).toBeUndefined();
    const wrong = hex('not these bytes');
    await os.putBlob({ name: wrong }, new Uint8Array([1, 2, 3]));
    await expect(a.blobs.get(wrong)).rejects.toBeInstanceOf(IntegrityError);
  });

  it('nats store – a round of many updates lists whole from another process and its payloads, read ahead, come back verified once each; mismatched bytes are still refused', async () => {
    const [a, b] = await pair();
    const ids = await runWithOpenRound(a, 'run-1', 12); // above the snapshot threshold
    const os = await (a as unknown as { nc: import('nats').NatsConnection }).nc.jetstream().views.os(`${prefix}_blobs`);
    const payloads = ids.map((_, k) => new Uint8Array(1_200_000 + k).map((_, i) => (i * (k + 3)) % 251)); // two chunks each
    const shas = await Promise.all(payloads.map(async (bytes) => (await a.blobs.put(bytes)).sha256));
    shas[11] = hex('not these bytes');
    await os.putBlob({ name: shas[11] }, new Uint8Array([1, 2, 3]));
    for (const [k, clientId] of ids.entries()) {
      await a.updates.put({ runId: 'run-1', round: 1, clientId, sha256: shas[k]!, numExamples: 1 + k, metrics: {} });
    }
    const listed = await b.updates.list('run-1', 1);
    expect(listed.map((u) => u.clientId).sort()).toEqual([...ids].sort());
    for (const [k, sha] of shas.entries()) {
      if (k === 11) await expect(b.blobs.get(sha)).rejects.toBeInstanceOf(IntegrityError);
      else expect(Buffer.from((await b.blobs.get(sha))!).equals(Buffer.from(payloads[k]!))).toBe(true);
    }
    expect(Buffer.from((await b.blobs.get(shas[0]!))!).equals(Buffer.from(payloads[0]!))).toBe(true); // read again
  });

  it('nats store – a blob streamed in pieces is an ordinary object under the writer\'s hash; the same bytes again keep the stored object; an aborted one leaves nothing', async () => {
    const [a, b] = await pair();
    const os = await (a as unknown as { nc: import('nats').NatsConnection }).nc.jetstream().views.os(`${prefix}_blobs`);
    const bytes = new Uint8Array(2_600_000).map((_, i) => (i * 13) % 251);
    const sha256 = hex(bytes);
    const stream = (writer: ReturnType<NatsStore['blobs']['writer']>): void => {
      for (let offset = 0; offset < bytes.length; offset += 300_001) writer.write(bytes.subarray(offset, Math.min(bytes.length, offset + 300_001)));
    };
    const first = a.blobs.writer(bytes.length);
    stream(first);
    expect(await first.commit(sha256)).toEqual({ sha256, created: true });
    expect(Buffer.from((await os.getBlob(sha256))!).equals(Buffer.from(bytes))).toBe(true); // nats.js checks the digest
    const again = b.blobs.writer(bytes.length);
    stream(again);
    expect(await again.commit(sha256)).toEqual({ sha256, created: false });
    expect(Buffer.from((await b.blobs.get(sha256))!).equals(Buffer.from(bytes))).toBe(true);
    const dropped = a.blobs.writer(4);
    dropped.write(new Uint8Array([1, 2, 3, 4]));
    await dropped.abort();
    expect(await a.blobs.has(hex(new Uint8Array([1, 2, 3, 4])))).toBe(false);
    const short = a.blobs.writer(10);
    short.write(new Uint8Array(4));
    await expect(short.commit(hex(new Uint8Array(4)))).rejects.toThrow(/4 of the 10 bytes/);
    const info = await (await (a as unknown as { nc: import('nats').NatsConnection }).nc.jetstreamManager()).streams.info(`OBJ_${prefix}_blobs`);
    expect(info.state.messages).toBe(4); // the object's three chunks and its metadata: duplicates and aborts purged
    await os.delete(sha256); // nats.js leaves a deleted marker under the name; streaming the bytes again revives it
    expect(await a.blobs.has(sha256)).toBe(false);
    const revived = a.blobs.writer(bytes.length);
    stream(revived);
    expect(await revived.commit(sha256)).toEqual({ sha256, created: true });
    expect(Buffer.from((await os.getBlob(sha256))!).equals(Buffer.from(bytes))).toBe(true);
  });

  it('nats store – a blob lists its chunks\' stream sequences, so another coordinator reads them all at once; an object nats.js wrote, without them, still reads', async () => {
    // Prepare
    const [a, b] = await pair();
    const nc = (a as unknown as { nc: import('nats').NatsConnection }).nc;
    const os = await nc.jetstream().views.os(`${prefix}_blobs`);
    const bytes = new Uint8Array(3_200_000).map((_, i) => (i * 23) % 251); // four chunks
    const theirs = new Uint8Array(700_000).map((_, i) => (i * 29) % 251); // six nats.js chunks of 128 KiB
    // Execute
    const { sha256 } = await a.blobs.put(bytes);
    await os.putBlob({ name: hex(theirs) }, theirs);
    const jsm = await nc.jetstreamManager();
    const meta = await jsm.streams.getMessage(`OBJ_${prefix}_blobs`, { last_by_subj: `$O.${prefix}_blobs.M.${Buffer.from(sha256).toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}` });
    const { nuid, chunk_seqs: seqs } = JSON.parse(new TextDecoder().decode(meta.data)) as { nuid: string; chunk_seqs: number[] };
    const subjects = await Promise.all(seqs.map(async (seq) => (await jsm.streams.getMessage(`OBJ_${prefix}_blobs`, { seq })).subject));
    // Assert
    expect(subjects).toEqual(seqs.map(() => `$O.${prefix}_blobs.C.${nuid}`));
    expect(seqs).toHaveLength(4);
    expect(Buffer.from((await b.blobs.get(sha256))!).equals(Buffer.from(bytes))).toBe(true);
    expect(Buffer.from((await b.blobs.get(hex(theirs)))!).equals(Buffer.from(theirs))).toBe(true);
  });

  it('nats store – the coordinator that streamed a blob serves it from memory; any other reads it from JetStream and verifies it', async () => {
    const [a, b] = await pair();
    const bytes = new Uint8Array(1_500_000).map((_, i) => (i * 17) % 251);
    const sha256 = hex(bytes);
    const writer = a.blobs.writer(bytes.length);
    writer.write(bytes);
    await writer.commit(sha256);
    // Its chunks gone from the stream (as if damaged): only the writer's memory still has the bytes.
    const jsm = await (a as unknown as { nc: import('nats').NatsConnection }).nc.jetstreamManager();
    await jsm.streams.purge(`OBJ_${prefix}_blobs`, { filter: `$O.${prefix}_blobs.C.>` });
    expect(Buffer.from((await a.blobs.get(sha256))!).equals(Buffer.from(bytes))).toBe(true);
    await expect(b.blobs.get(sha256)).rejects.toBeInstanceOf(IntegrityError);
  });

  it('nats store – the coordinator that put a blob serves it from memory, a copy its caller may reuse; any other reads it from JetStream', async () => {
    // Prepare
    const [a, b] = await pair();
    const bytes = new Uint8Array(1_500_000).map((_, i) => (i * 19) % 251);
    const original = bytes.slice();
    // Execute
    const { sha256 } = await a.blobs.put(bytes);
    bytes.fill(0); // the caller reuses its buffer
    const jsm = await (a as unknown as { nc: import('nats').NatsConnection }).nc.jetstreamManager();
    await jsm.streams.purge(`OBJ_${prefix}_blobs`, { filter: `$O.${prefix}_blobs.C.>` }); // only a's memory has the bytes now
    // Assert
    expect(sha256).toBe(hex(original));
    expect(Buffer.from((await a.blobs.get(sha256))!).equals(Buffer.from(original))).toBe(true);
    await expect(b.blobs.get(sha256)).rejects.toBeInstanceOf(IntegrityError);
  });

  it('nats store – refuses a bucket prefix that is not a bucket name', async () => {
    await expect(openNatsStore({ servers: SERVERS, bucketPrefix: 'a.b' })).rejects.toThrow(/bucketPrefix/);
  });
});

describe('nats store outage', () => {
  it('nats store – opening against a port where nothing listens fails fast with NatsUnavailableError', async () => {
    const port = await freePort();
    const started = performance.now();
    const opening = openNatsStore({ servers: `nats://127.0.0.1:${port}`, bucketPrefix: freshPrefix(), connectTimeoutMs: 1000 });
    await expect(opening).rejects.toBeInstanceOf(NatsUnavailableError);
    await expect(opening).rejects.toThrow(/NATS unavailable \(connection refused\)/);
    expect(performance.now() - started).toBeLessThan(1500);
  });

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    it(`nats store – while the server is down (${signal}) calls fail fast, and after a restart nothing acknowledged is lost`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'lethe-nats-'));
      const port = await freePort();
      let server = await startNatsServer(port, dir);
      const store = await openNatsStore({ servers: `nats://127.0.0.1:${port}`, bucketPrefix: 'outage', requestTimeoutMs: 1000 });
      try {
        const ids = await runWithOpenRound(store, 'run-1', 4);
        for (const id of ids) await store.updates.put({ runId: 'run-1', round: 1, clientId: id, sha256: hex(id), numExamples: 2, metrics: {} });
        for (let seq = 0; seq < 5; seq++) {
          await store.ledger.append({ runId: 'run-1', seq, round: seq + 1, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: seq });
        }
        const { sha256 } = await store.blobs.put(new Uint8Array(1_500_000).fill(7)); // two object-store chunks

        await stopProcess(server, signal);
        // A call in flight when the server died fails at the request timeout; once the client has seen the
        // disconnect, every call fails at once.
        const failure = await eventually(async () => {
          const started = performance.now();
          const err = await store.runs.get('run-1').then(
            () => new Error('a call succeeded with the server down'),
            (e: unknown) => e,
          );
          if (!(err instanceof NatsUnavailableError)) throw err;
          const ms = performance.now() - started;
          if (ms >= 50) throw new Error(`failed after ${ms} ms`);
          return err;
        });
        expect(failure.code).toBe('busy');
        expect(failure.message).toMatch(/NATS unavailable \(disconnected, reconnecting\)/);

        server = await startNatsServer(port, dir);
        expect((await eventually(() => store.ledger.list('run-1'))).map((e) => e.seq)).toEqual([0, 1, 2, 3, 4]);
        expect(await store.rounds.get('run-1', 1)).toMatchObject({ updatesReceived: 4, examplesReceived: 8 });
        expect(await store.updates.list('run-1', 1)).toHaveLength(4);
        expect((await store.blobs.get(sha256))?.length).toBe(1_500_000);
        await store.ledger.append({ runId: 'run-1', seq: 5, round: 6, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 5 });
        expect(await store.ledger.list('run-1')).toHaveLength(6);
      } finally {
        store.close();
        await stopProcess(server, 'SIGTERM');
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
