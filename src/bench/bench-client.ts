/**
 * The lightweight clients of the benchmarks (aggregate.ts, aggregate-senders.ts, nats.ts): an enrolled identity that
 * pulls tasks, fetches adapters and pushes prepared updates, and nothing else. Kept apart from the coordinator's
 * modules so that a process playing clients (aggregate-senders.ts) loads the transport only, as a client would: with
 * the coordinator's modules its heap is ~7× larger, and every garbage collection the 1 MiB chunk buffers set off
 * costs as much more.
 */
import { credentials, Metadata } from '@grpc/grpc-js';
import { exportPublicKeyRaw, generateEd25519KeyPair, type Ed25519KeyPair } from '../auth/keys.js';
import { newNonce, signRequest } from '../auth/signing.js';
import { encodeTensors, type EncodedTensors } from '../wire/codec.js';
import type { Task } from '../wire/messages.js';
import { methodPath, type LetheProto, type ServiceKey } from '../wire/proto.js';
import { callUnary, clientStreamCall, createClient, type FleetClient } from '../wire/services.js';
import { pushUpdateMessages, receiveAdapter, writeAll } from '../wire/transfer.js';

/** One enrolled identity calling the fleet service. */
export class BenchClient {
  id = '';

  constructor(
    private readonly proto: LetheProto,
    readonly fleet: FleetClient,
    readonly keys: Ed25519KeyPair = generateEd25519KeyPair(),
  ) {}

  signed(service: ServiceKey, method: string, body: Uint8Array, clientId = this.id) {
    const timestampMs = Date.now();
    const nonce = newNonce();
    const signature = signRequest(this.keys.privateKey, { method: methodPath(service, method), clientId, timestampMs, nonce, payload: body });
    return { auth: { clientId, timestampMs, nonce, signature }, body };
  }

  async enroll(address: string, joinToken: string): Promise<void> {
    const enrollment = createClient(this.proto, 'enrollment', address, credentials.createInsecure());
    const body = this.proto.bodies.enroll.encode({
      joinToken,
      publicKey: exportPublicKeyRaw(this.keys.publicKey),
      name: 'bench',
      capabilities: { backend: 'cpu', modes: ['TRAINING_MODE_BACKPROP'], numExamples: 100 },
    });
    this.id = (await callUnary(enrollment, 'Enroll', this.signed('enrollment', 'Enroll', body, ''))).clientId;
    enrollment.close();
  }

  heartbeat(): Promise<unknown> {
    return callUnary(this.fleet, 'Heartbeat', this.signed('fleet', 'Heartbeat', this.proto.bodies.heartbeat.encode({ state: 'CLIENT_STATE_IDLE' })));
  }

  async pullTask(waitMs: number): Promise<Task> {
    const res = await callUnary(this.fleet, 'PullTask', this.signed('fleet', 'PullTask', this.proto.bodies.pullTask.encode({ waitMs })));
    if (!res.task) throw new Error(`client ${this.id} got no task within ${waitMs} ms`);
    return res.task;
  }

  async fetch(task: Task): Promise<void> {
    const request = this.signed('fleet', 'FetchAdapter', this.proto.bodies.fetchAdapter.encode({ runId: task.runId, sha256: task.adapterSha256 }));
    await receiveAdapter(this.fleet.FetchAdapter(request, new Metadata()));
  }

  async push(task: Task, encoded: EncodedTensors): Promise<void> {
    const body = this.proto.bodies.updateHeader.encode({
      runId: task.runId,
      round: task.round,
      taskId: task.taskId,
      kind: 'UPDATE_KIND_DENSE',
      numExamples: 10,
      manifest: encoded.manifest,
    });
    const { auth } = this.signed('fleet', 'PushUpdate', body);
    const { stream, response } = clientStreamCall((cb) => this.fleet.PushUpdate(new Metadata(), {}, cb));
    await writeAll(stream, pushUpdateMessages(auth, body, encoded));
    await response;
  }
}

/** A prepared update for `task`: every upload tensor filled with a small deterministic pattern. */
export function preparedUpdate(task: Task, shapes: ReadonlyMap<string, readonly number[]>, salt: number): EncodedTensors {
  const tensors = new Map(
    task.uploadTensors.map((name) => {
      const shape = shapes.get(name)!;
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      // Different for every client and round, as real updates are: a payload already stored takes another path at
      // ingest. (Seeded by (i + seed) mod 1000 alone, a client's round-2 update was another's from round 1.)
      const seed = Math.imul(salt + 7919 * task.round, 2246822519);
      for (let i = 0; i < data.length; i++) data[i] = ((Math.imul(i + 1, 2654435761) ^ seed) >>> 0) % 1000 * 1e-7;
      return [name, { shape: [...shape], data }] as const;
    }),
  );
  return encodeTensors(tensors);
}
