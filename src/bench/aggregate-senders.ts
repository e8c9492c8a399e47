/**
 * The uploading clients of the ingest measurement (aggregate.ts measureIngest), run as a process of their own, as
 * clients are: the coordinator's rate is then not paid out of its own event loop for encoding, framing and sending
 * the uploads. Started with fork (IPC, advanced serialization), it takes jobs until the parent disconnects:
 *
 *   parent → { address, shapes, clients: [{ id, privateKeyPem, task }] }   the child prepares every update, then
 *   child  → 'ready'
 *   parent → 'go'                                                           every client pushes at once
 *   child  → 'done' | { error }
 */
import { createPublicKey } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { importPrivateKeyPem } from '../auth/keys.js';
import type { Task } from '../wire/messages.js';
import { loadLetheProto } from '../wire/proto.js';
import { createClient } from '../wire/services.js';
import { BenchClient, preparedUpdate } from './bench-client.js';

export interface SenderJob {
  readonly address: string;
  readonly shapes: readonly (readonly [string, readonly number[]])[];
  readonly clients: readonly { readonly id: string; readonly privateKeyPem: string; readonly task: Task }[];
}

/** Connections the uploads share, as many clients behind one NAT would share a few. */
const CHANNELS = 8;

/** The parent's next message; undefined once it has disconnected. */
function nextMessage(): Promise<unknown> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown): void => {
      process.off('disconnect', onDisconnect);
      resolve(m);
    };
    const onDisconnect = (): void => {
      process.off('message', onMessage);
      resolve(undefined);
    };
    process.once('message', onMessage);
    process.once('disconnect', onDisconnect);
  });
}

async function runJob(job: SenderJob): Promise<void> {
  const proto = loadLetheProto();
  const channels = Array.from({ length: Math.min(job.clients.length, CHANNELS) }, () => createClient(proto, 'fleet', job.address, credentials.createInsecure()));
  const shapes = new Map(job.shapes);
  const clients = job.clients.map((c, k) => {
    const privateKey = importPrivateKeyPem(c.privateKeyPem);
    const client = new BenchClient(proto, channels[k % channels.length]!, { privateKey, publicKey: createPublicKey(privateKey) });
    client.id = c.id;
    return client;
  });
  const updates = job.clients.map((c, k) => preparedUpdate(c.task, shapes, k));
  process.send!('ready');
  await nextMessage();
  try {
    await Promise.all(clients.map((c, k) => c.push(job.clients[k]!.task, updates[k]!)));
    process.send!('done');
  } catch (err) {
    process.send!({ error: String(err) });
  } finally {
    for (const c of channels) c.close();
  }
}

async function main(): Promise<void> {
  for (let job = await nextMessage(); job !== undefined; job = await nextMessage()) await runJob(job as SenderJob);
}

void main();
