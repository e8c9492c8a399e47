/**
 * The uploading clients of the ingest measurements (aggregate.ts and nats.ts measureIngest), run as a process of
 * their own, as clients are: the coordinator's rate is then not paid out of its own event loop for encoding, framing
 * and sending the uploads. Started with fork (IPC, advanced serialization), it takes jobs until the parent disconnects:
 *
 *   parent → { shapes, clients: [{ id, privateKeyPem, task, address }] }   the child prepares every update, then
 *   child  → 'ready'
 *   parent → 'go'                                                           every client pushes at once
 *   child  → 'done' | { error }
 */
import { createPublicKey } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { importPrivateKeyPem } from '../auth/keys.js';
import type { Task } from '../wire/messages.js';
import { loadLetheProto } from '../wire/proto.js';
import { createClient, type FleetClient } from '../wire/services.js';
import { BenchClient, preparedUpdate } from './bench-client.js';
import { nextMessage } from './child-messages.js';

export interface SenderJob {
  readonly shapes: readonly (readonly [string, readonly number[]])[];
  /** Each client with the coordinator it uploads to. */
  readonly clients: readonly { readonly id: string; readonly privateKeyPem: string; readonly task: Task; readonly address: string }[];
}

/** Connections to each coordinator the uploads share, as many clients behind one NAT would share a few. */
const CHANNELS = 8;

async function runJob(job: SenderJob): Promise<void> {
  const proto = loadLetheProto();
  const shapes = new Map(job.shapes);
  // Each coordinator's clients take its channels in turn.
  const channels = new Map<string, FleetClient[]>();
  const assigned = new Map<string, number>();
  const clients = job.clients.map((c) => {
    const own = channels.get(c.address) ?? [];
    channels.set(c.address, own);
    const index = assigned.get(c.address) ?? 0;
    assigned.set(c.address, index + 1);
    if (index < CHANNELS) own.push(createClient(proto, 'fleet', c.address, credentials.createInsecure()));
    const privateKey = importPrivateKeyPem(c.privateKeyPem);
    const client = new BenchClient(proto, own[index % CHANNELS]!, { privateKey, publicKey: createPublicKey(privateKey) });
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
    for (const c of [...channels.values()].flat()) c.close();
  }
}

async function main(): Promise<void> {
  for (let job = await nextMessage<SenderJob>(); job !== undefined; job = await nextMessage<SenderJob>()) await runJob(job);
}

void main();
