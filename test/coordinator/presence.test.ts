/**
 * Liveness shared between coordinators (src/coordinator/presence.ts with a sink, as src/cluster/presence.ts provides
 * on NATS): sightings are shared at most every shareEveryMs per client, other coordinators' sightings count, and a
 * revoked client is forgotten everywhere.
 */
import { describe, expect, it } from 'vitest';
import type { PresenceSink } from '../../src/cluster/presence.js';
import { Presence } from '../../src/coordinator/presence.js';

class RecordingSink implements PresenceSink {
  readonly shared: [string, number][] = [];
  readonly forgotten: string[] = [];
  share(clientId: string, atMs: number): void {
    this.shared.push([clientId, atMs]);
  }
  forget(clientId: string): void {
    this.forgotten.push(clientId);
  }
}

describe('presence', () => {
  it('presence – shares a client at most every shareEveryMs, and counts what other coordinators saw', () => {
    // Arrange: a 15 s online window shared every 5 s, on a clock the test moves
    let now = 1_000_000;
    const sink = new RecordingSink();
    const presence = new Presence(() => now, 15_000, sink);

    // Act: calls from c1 every second for 12 s; c2 only seen by another coordinator
    for (let t = 0; t <= 12_000; t += 1000, now += 1000) presence.seen('c1');
    presence.observe('c2', now - 2000);
    presence.observe('c3', now - 20_000);

    // Assert
    expect(sink.shared.map(([id, at]) => [id, at - 1_000_000])).toEqual([
      ['c1', 0],
      ['c1', 5000],
      ['c1', 10_000],
    ]);
    expect(presence.isOnline('c2')).toBe(true);
    expect(presence.isOnline('c3')).toBe(false);
    expect(presence.onlineIds().sort()).toEqual(['c1', 'c2']);
    presence.observe('c1', 0); // an older sighting never moves last-seen back
    expect(presence.lastSeenMs('c1')).toBe(now - 1000);
  });

  it('presence – a revoked client is forgotten here and through the sink everywhere', () => {
    const sink = new RecordingSink();
    const presence = new Presence(() => 0, 15_000, sink);
    presence.seen('c1');
    presence.forget('c1');
    expect(presence.isOnline('c1')).toBe(false);
    expect(sink.forgotten).toEqual(['c1']);
  });
});
