/** Publishing an object's chunks with a bounded window of unacknowledged ones (src/store/nats/chunk-publisher.ts). */
import type { JetStreamClient } from 'nats';
import { describe, expect, it } from 'vitest';
import { ChunkPublisher } from '../../src/store/nats/chunk-publisher.js';

/** A JetStream client whose publishes wait until the test acknowledges or fails them, in order. */
function fakeJetStream() {
  const pending: { bytes: Uint8Array; settle: (err?: Error) => void }[] = [];
  const published: Uint8Array[] = [];
  const js = {
    publish(_subject: string, bytes: Uint8Array) {
      published.push(bytes);
      return new Promise((resolve, reject) => pending.push({ bytes, settle: (err) => (err ? reject(err) : resolve({ seq: published.length })) }));
    },
  } as unknown as JetStreamClient;
  /** Settles the oldest unsettled publish, then lets the publisher react. */
  const next = async (err?: Error): Promise<void> => {
    pending.shift()!.settle(err);
    await new Promise((r) => setImmediate(r));
  };
  return { js, pending, published, next };
}

const chunk = (i: number): Uint8Array => new Uint8Array([i]);
const noRefusal = (): undefined => undefined;

describe('nats chunk publisher', () => {
  it('chunk publisher – keeps at most its window of chunks unacknowledged, publishes in order, and settles once all are acknowledged', async () => {
    // Prepare
    const fake = fakeJetStream();
    const publisher = new ChunkPublisher(fake.js, 'subject', noRefusal, 3);
    // Execute
    for (let i = 0; i < 7; i++) publisher.publish(chunk(i));
    const inFlightAtFirst = fake.pending.length;
    let settled = false;
    const done = publisher.settled().then(() => (settled = true));
    const windows: number[] = [];
    while (fake.pending.length > 0) {
      await fake.next();
      windows.push(fake.pending.length);
    }
    await done;
    // Assert
    expect(inFlightAtFirst).toBe(3);
    expect(Math.max(...windows)).toBeLessThanOrEqual(3);
    expect(fake.published.map((b) => b[0])).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(publisher.count).toBe(7);
    expect(settled).toBe(true);
  });

  it('chunk publisher – a failed publish stops the rest and settled() rejects with it; cancel waits for those in flight', async () => {
    // Prepare
    const fake = fakeJetStream();
    const publisher = new ChunkPublisher(fake.js, 'subject', noRefusal, 2);
    for (let i = 0; i < 6; i++) publisher.publish(chunk(i));
    const result = publisher.settled();
    result.catch(() => undefined); // asserted below
    // Execute
    await fake.next(new Error('no space'));
    let cancelled = false;
    const cancel = publisher.cancel().then(() => (cancelled = true));
    await new Promise((r) => setImmediate(r));
    const cancelledBeforeLastAck = cancelled;
    await fake.next();
    await cancel;
    // Assert
    await expect(result).rejects.toThrow('no space');
    expect(fake.published).toHaveLength(2); // nothing after the failure
    expect(cancelledBeforeLastAck).toBe(false);
  });

  it('chunk publisher – refuses to publish on a closed store', async () => {
    const fake = fakeJetStream();
    const publisher = new ChunkPublisher(fake.js, 'subject', () => new Error('store closed'));
    publisher.publish(chunk(0));
    await expect(publisher.settled()).rejects.toThrow('store closed');
    expect(fake.published).toHaveLength(0);
  });
});
