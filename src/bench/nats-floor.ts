/**
 * What JetStream alone moves on this machine, the baseline of nats.ts's ingest_mbps in the same run: two processes
 * (nats-floor-worker.ts), standing for the two coordinators, each publish their half of the ingest bytes to a
 * file-backed stream as the NATS blob store does, at once; then the first reads the second's half back by direct get,
 * as the leader does. No gRPC, no signatures, no hashing, no KV: the lowest cost of the path the updates take through
 * JetStream, and so the ceiling of ingest_mbps here. MB = 10^6 bytes.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, StorageType } from 'nats';
import { withoutHeapFloor } from '../memory-tuning.js';
import { nextReply, replyOf } from './child-messages.js';
import type { FloorJob } from './nats-floor-worker.js';

const WHO = 'JetStream floor worker';

function startWorker(): ChildProcess {
  return fork(fileURLToPath(new URL('./nats-floor-worker.js', import.meta.url)), [], { stdio: 'inherit', execArgv: withoutHeapFloor() });
}

export interface JetStreamFloor {
  /** MB/s from the first publish to the last byte read back. */
  readonly mbps: number;
  /** MB/s of the publishing alone (until both sides' chunks are acknowledged). */
  readonly publishMbps: number;
}

/** `clientCount` objects of `bytesPerClient` each through a temporary stream (deleted afterwards). */
export async function measureJetStreamFloor(servers: readonly string[], bytesPerClient: number, clientCount: number): Promise<JetStreamFloor> {
  const stream = `lethe_bench_floor_${process.pid}_${Date.now().toString(36)}`;
  const nc = await connect({ servers: [...servers] });
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: StorageType.File, allow_direct: true });
  const workers = [startWorker(), startWorker()];
  try {
    const shares = [Math.ceil(clientCount / 2), Math.floor(clientCount / 2)];
    const ready = workers.map((w) => replyOf(w, WHO, 'ready'));
    workers.forEach((w, i) => w.send({ servers, stream, objects: shares[i]!, bytes: bytesPerClient } satisfies FloorJob));
    await Promise.all(ready);
    const start = performance.now();
    const published = workers.map((w) => nextReply(w, WHO, (m) => (typeof m === 'object' && m !== null && 'seqs' in m ? (m as { seqs: number[][] }).seqs : undefined)));
    for (const w of workers) w.send('publish');
    const [, peerSeqs] = await Promise.all(published);
    const acknowledged = performance.now();
    const read = replyOf(workers[0]!, WHO, 'read');
    workers[0]!.send({ read: peerSeqs });
    await read;
    const mbps = (seconds: number): number => (bytesPerClient * clientCount) / seconds / 1e6;
    return { mbps: mbps((performance.now() - start) / 1000), publishMbps: mbps((acknowledged - start) / 1000) };
  } finally {
    for (const w of workers) w.kill();
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  }
}
