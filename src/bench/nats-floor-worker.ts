/**
 * One side of the JetStream floor (nats-floor.ts), in a process of its own as a coordinator is: it publishes its share
 * of the ingest bytes to a file-backed stream the way the NATS blob store does (1 MiB messages, a window awaiting
 * acknowledgement, every object at once), and reads another side's share back by direct get. No gRPC, no hashing,
 * no Lethe state: only what JetStream itself costs. Started with fork (IPC), it takes messages until the parent
 * disconnects:
 *
 *   parent → { servers, stream, objects, bytes }   the child connects and fills its objects with random bytes, then
 *   child  → 'ready'
 *   parent → 'publish'                             every object's chunks, all objects at once
 *   child  → { seqs }                              each object's chunk sequences, in order
 *   parent → { read }                              these sequences by direct get, 8 in flight, into one buffer
 *   child  → 'read' | { error }
 */
import { randomFillSync } from 'node:crypto';
import { connect, type NatsConnection } from 'nats';
import { CHUNK_READS_IN_FLIGHT, chunkBytesOn } from '../store/nats/blobs.js';
import { ChunkPublisher } from '../store/nats/chunk-publisher.js';
import { nextMessage } from './child-messages.js';

export interface FloorJob {
  readonly servers: readonly string[];
  readonly stream: string;
  readonly objects: number;
  readonly bytes: number;
}


function reply(message: unknown): void {
  process.send!(message);
}

async function publishAll(nc: NatsConnection, job: FloorJob, objects: readonly Uint8Array[]): Promise<number[][]> {
  const js = nc.jetstream({ timeout: 30_000 });
  const chunk = chunkBytesOn(nc);
  return Promise.all(
    objects.map(async (bytes, k) => {
      const publisher = new ChunkPublisher(js, `${job.stream}.${process.pid}.${k}`, () => undefined);
      for (let at = 0; at < bytes.length; at += chunk) publisher.publish(bytes.subarray(at, Math.min(bytes.length, at + chunk)));
      await publisher.settled();
      return publisher.seqs;
    }),
  );
}

async function readAll(nc: NatsConnection, stream: string, seqs: readonly number[], bytes: number): Promise<void> {
  const api = `$JS.API.DIRECT.GET.${stream}`;
  const out = Buffer.allocUnsafe(bytes);
  const replies = seqs.slice(0, CHUNK_READS_IN_FLIGHT).map((seq) => nc.request(api, JSON.stringify({ seq }), { timeout: 30_000 }));
  let offset = 0;
  for (let i = 0; i < seqs.length; i++) {
    const m = await replies[i]!;
    const next = seqs[i + CHUNK_READS_IN_FLIGHT];
    if (next !== undefined) replies.push(nc.request(api, JSON.stringify({ seq: next }), { timeout: 30_000 }));
    out.set(m.data, offset);
    offset += m.data.length;
  }
  if (offset !== bytes) throw new Error(`read ${offset} bytes back, expected ${bytes}`);
}

async function main(): Promise<void> {
  const job = await nextMessage<FloorJob>();
  if (job === undefined) return;
  const nc = await connect({ servers: [...job.servers] });
  try {
    const objects = Array.from({ length: job.objects }, () => randomFillSync(new Uint8Array(job.bytes)));
    reply('ready');
    for (let m = await nextMessage<unknown>(); m !== undefined; m = await nextMessage<unknown>()) {
      if (m === 'publish') reply({ seqs: await publishAll(nc, job, objects) });
      else if (typeof m === 'object' && m !== null && 'read' in m) {
        const { read } = m as { read: number[][] };
        await Promise.all(read.map((seqs) => readAll(nc, job.stream, seqs, job.bytes)));
        reply('read');
      }
    }
  } catch (err) {
    reply({ error: String(err) });
  } finally {
    await nc.close();
  }
}

void main();
