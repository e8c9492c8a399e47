/**
 * Shared liveness on the shared NATS server (a fresh prefix per test): what one coordinator shares, every other one's
 * mirror sees, with the sighting's time; a forgotten client is dropped everywhere.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { natsClusterConfig, openNatsCluster, type NatsCluster } from '../../src/cluster/cluster.js';
import type { PresenceObserver } from '../../src/cluster/presence.js';
import { destroyPrefix, eventually, freshPrefix, NATS_URL } from './helpers.js';

/** A mirror of what the watch reports. */
function mirror(): PresenceObserver & { readonly seen: Map<string, number> } {
  const seen = new Map<string, number>();
  return { seen, observe: (id, at) => seen.set(id, at), drop: (id) => seen.delete(id) };
}

describe('cluster presence', () => {
  let prefix: string;
  const clusters: NatsCluster[] = [];

  beforeEach(() => {
    prefix = freshPrefix('presence');
  });

  afterEach(async () => {
    await Promise.all(clusters.splice(0).map((c) => c.close()));
    await destroyPrefix(NATS_URL, prefix);
  });

  async function member(holder: string): Promise<NatsCluster> {
    const cluster = await openNatsCluster(natsClusterConfig({ servers: [NATS_URL], bucketPrefix: prefix }), { holder, presenceTtlMs: 30_000, log: () => undefined });
    clusters.push(cluster);
    return cluster;
  }

  it('presence – a client one coordinator shares is live in the other\'s mirror with its time, also for a mirror started later, and forget drops it', async () => {
    const [a, b] = [await member('a'), await member('b')];
    const live = mirror();
    await b.presence.follow(live);
    a.presence.share('client-1', 1_700_000_000_123);
    a.presence.share('client-2', 1_700_000_000_456);
    await eventually(async () => expect(live.seen).toEqual(new Map([['client-1', 1_700_000_000_123], ['client-2', 1_700_000_000_456]])), 5000, 20);
    const late = mirror();
    await (await member('c')).presence.follow(late); // resolves once the stored sightings are in
    expect(late.seen.get('client-2')).toBe(1_700_000_000_456);
    a.presence.forget('client-1');
    await eventually(async () => expect([...live.seen.keys()]).toEqual(['client-2']), 5000, 20);
  });
});
