/**
 * Run leases on the shared NATS server (a fresh bucket per test): one leader at a time, takeover only after a whole
 * ttl of silence, a fenced-out old leader, release for an immediate hand-over.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, type KV, type NatsConnection } from 'nats';
import { LeaseLostError } from '../../src/cluster/errors.js';
import { NatsRunLeases, type LeaseConfig } from '../../src/cluster/leases.js';
import { destroyPrefix, freshPrefix, NATS_URL } from './helpers.js';

const FAST: LeaseConfig = Object.freeze({ ttlMs: 400, renewEveryMs: 100, pollMs: 50 });
/** The lease key of a run (base64url of the id, as leases.ts writes it). */
const key = (runId: string): string => Buffer.from(runId).toString('base64url');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('cluster leases', () => {
  let prefix: string;
  let nc: NatsConnection;
  let kv: KV;
  const leases: NatsRunLeases[] = [];

  beforeEach(async () => {
    prefix = freshPrefix('leases');
    nc = await connect({ servers: NATS_URL });
    kv = await nc.jetstream().views.kv(`${prefix}_leases`, { history: 1 });
  });

  afterEach(async () => {
    await Promise.all(leases.splice(0).map((l) => l.close()));
    await nc.close();
    await destroyPrefix(NATS_URL, prefix);
  });

  function member(holder: string): NatsRunLeases {
    const l = new NatsRunLeases(kv, holder, FAST, () => undefined);
    leases.push(l);
    return l;
  }

  it('leases – of coordinators racing for a free lease exactly one leads', async () => {
    const members = ['a', 'b', 'c', 'd'].map((h) => member(h));
    const results = await Promise.all(members.map((m) => m.lead('run-1')));
    expect(results.filter(Boolean)).toHaveLength(1);
    // And it keeps leading while it renews: nobody else gets in over several ttls.
    await sleep(1000);
    const again = await Promise.all(members.map((m) => m.lead('run-1')));
    expect(again).toEqual(results);
  });

  it('leases – a follower takes over a silent lease only after it stayed unchanged for a whole ttl', async () => {
    // Arrange: the lease of a coordinator that died without releasing it
    await kv.create(key('run-1'), JSON.stringify({ holder: 'dead', renewedAt: 0, expiresAt: 0 }));
    const follower = member('new');

    // Act / Assert: the follower first only observes, then takes over once the ttl has passed
    expect(await follower.lead('run-1')).toBe(false);
    await sleep(200);
    expect(await follower.lead('run-1')).toBe(false);
    await sleep(300);
    expect(await follower.lead('run-1')).toBe(true);
    expect(JSON.parse((await kv.get(key('run-1')))!.string())).toMatchObject({ holder: 'new' });
  });

  it('leases – a leader whose lease another coordinator took is fenced out and follows', async () => {
    const old = member('old');
    expect(await old.lead('run-1')).toBe(true);
    // What a takeover (after this leader stalled past its ttl) leaves in the key
    await kv.put(key('run-1'), JSON.stringify({ holder: 'other', renewedAt: 0, expiresAt: 0 }));
    await expect(old.fence('run-1')).rejects.toBeInstanceOf(LeaseLostError);
    expect(await old.lead('run-1')).toBe(false);
  });

  it('leases – release hands the run over at once; a fence without the lease throws LeaseLostError', async () => {
    const a = member('a');
    const b = member('b');
    expect(await a.lead('run-1')).toBe(true);
    expect(await b.lead('run-1')).toBe(false);
    await expect(b.fence('run-1')).rejects.toThrow(/does not hold the lease of run run-1/);
    await a.release('run-1');
    expect(await b.lead('run-1')).toBe(true);
    expect(await a.lead('run-1')).toBe(false);
  });
});
