/**
 * Test clients for a live coordinator: real gRPC calls on 127.0.0.1, signed with real Ed25519 keys, built from the
 * wire and auth libraries only (no coordinator code), as a client node would. Plus a tiny GPT-2 checkpoint so runs
 * need no pretraining.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { exportPublicKeyRaw, generateEd25519KeyPair, type Ed25519KeyPair } from '../../src/auth/keys.js';
import { newNonce, signRequest } from '../../src/auth/signing.js';
import { saveCheckpoint } from '../../src/model/checkpoint.js';
import { initWeights, type GPT2Config } from '../../src/model/gpt2.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { encodeTensors, type EncodedTensors, type WireChunk, type WireTensorEntry } from '../../src/wire/codec.js';
import type { CreateRunRequest } from '../../src/wire/admin-messages.js';
import type { Capabilities, MessageInput, PushUpdateRequest, PushUpdateResponse, RequestAuth, Task, TensorManifest } from '../../src/wire/messages.js';
import { loadLetheProto, methodPath, type LetheProto, type ServiceKey } from '../../src/wire/proto.js';
import { callUnary, clientStreamCall, createClient, type AdminClient, type EnrollmentClient, type FleetClient } from '../../src/wire/services.js';
import { pushUpdateMessages, receiveAdapter, writeAll } from '../../src/wire/transfer.js';

export const proto: LetheProto = loadLetheProto();

/** 2 layers × 16 wide, byte vocabulary: adapters of a few KiB. */
export const TEST_MODEL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 16, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Writes the test model as a Hugging Face checkpoint directory and returns its path (a run's base_model). */
export async function writeTestModel(dir: string): Promise<string> {
  const path = join(dir, 'base-model');
  await saveCheckpoint(path, TEST_MODEL, initWeights(TEST_MODEL, 'coordinator-test'));
  return path;
}

/** A run config (JSON, snake_case) on the test model, merged with `extra`. */
export function runJson(baseModel: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'test', base_model: baseModel, seq_len: 16, lora: { r: 4, alpha: 8 }, rounds: 2, min_clients: 2, round_deadline_s: 30, ...extra };
}

export function adminMetadata(token: string): Metadata {
  const m = new Metadata();
  m.set('authorization', `Bearer ${token}`);
  return m;
}

export class Admin {
  readonly client: AdminClient;
  constructor(
    address: string,
    private readonly token: string,
  ) {
    this.client = createClient(proto, 'admin', address, credentials.createInsecure());
  }

  joinToken(uses = 10, ttlSeconds = 3600): Promise<string> {
    return callUnary(this.client, 'CreateJoinToken', { ttlSeconds, uses }, { metadata: adminMetadata(this.token) }).then((t) => t.token);
  }

  createRun(config: Record<string, unknown>): Promise<{ runId: string }> {
    const request: MessageInput<CreateRunRequest> = { extraJson: JSON.stringify(config) };
    return callUnary(this.client, 'CreateRun', request, { metadata: adminMetadata(this.token) });
  }

  call<K extends 'GetRun' | 'ListRounds' | 'ListClients' | 'RevokeClient' | 'RaiseBudget' | 'Status' | 'ListRuns'>(method: K, request: Parameters<AdminClient[K]>[0]) {
    return callUnary(this.client, method, request as never, { metadata: adminMetadata(this.token) });
  }

  close(): void {
    this.client.close();
  }
}

export const TEST_CAPABILITIES: MessageInput<Capabilities> = {
  backend: 'cpu',
  memoryBudgetBytes: 512 << 20,
  modes: ['TRAINING_MODE_BACKPROP'],
  numExamples: 100,
  software: 'lethe-test',
};

/** One enrolled client identity with its own key, calling through real gRPC clients. */
export class TestClient {
  readonly publicKey: Uint8Array;
  readonly enrollment: EnrollmentClient;
  readonly fleet: FleetClient;
  id = '';

  /** `keys` and `id` reuse an identity (e.g. against a restarted coordinator). */
  constructor(
    address: string,
    readonly clock: () => number = Date.now,
    readonly keys: Ed25519KeyPair = generateEd25519KeyPair(),
    id = '',
  ) {
    this.publicKey = exportPublicKeyRaw(keys.publicKey);
    this.id = id;
    this.enrollment = createClient(proto, 'enrollment', address, credentials.createInsecure());
    this.fleet = createClient(proto, 'fleet', address, credentials.createInsecure());
  }

  /** A RequestAuth for `body` on `service`/`method`, signed as this client (or as `clientId`). */
  auth(service: ServiceKey, method: string, body: Uint8Array, clientId = this.id, nonce = newNonce()): MessageInput<RequestAuth> {
    const timestampMs = this.clock();
    const signature = signRequest(this.keys.privateKey, { method: methodPath(service, method), clientId, timestampMs, nonce, payload: body });
    return { clientId, timestampMs, nonce, signature };
  }

  async enroll(joinToken: string, capabilities: MessageInput<Capabilities> = TEST_CAPABILITIES): Promise<string> {
    const body = proto.bodies.enroll.encode({ joinToken, publicKey: this.publicKey, name: 'test client', capabilities });
    const res = await callUnary(this.enrollment, 'Enroll', { auth: this.auth('enrollment', 'Enroll', body, ''), body });
    this.id = res.clientId;
    return res.clientId;
  }

  heartbeat(taskId = '') {
    const body = proto.bodies.heartbeat.encode({ state: 'CLIENT_STATE_IDLE', taskId });
    return callUnary(this.fleet, 'Heartbeat', { auth: this.auth('fleet', 'Heartbeat', body), body });
  }

  async pullTask(waitMs = 0): Promise<Task | null> {
    const body = proto.bodies.pullTask.encode({ waitMs });
    return (await callUnary(this.fleet, 'PullTask', { auth: this.auth('fleet', 'PullTask', body), body }, { deadline: Date.now() + waitMs + 10_000 })).task;
  }

  fetchAdapter(task: Task): Promise<Map<string, HostTensor>> {
    return this.fetchPayload(task.runId, task.adapterSha256);
  }

  /** Any payload of the run by SHA-256 (an adapter, an ESSA basis, a seed pool). */
  async fetchPayload(runId: string, sha256: Uint8Array): Promise<Map<string, HostTensor>> {
    return (await this.download(runId, sha256)).tensors;
  }

  /** A FetchAdapter answer as it came: its manifest and tensors (`omitFrozen`: FetchAdapterBody.omit_frozen). */
  download(runId: string, sha256: Uint8Array, omitFrozen = false): Promise<{ manifest: TensorManifest; tensors: Map<string, HostTensor> }> {
    const body = proto.bodies.fetchAdapter.encode({ runId, sha256, omitFrozen });
    const stream = this.fleet.FetchAdapter({ auth: this.auth('fleet', 'FetchAdapter', body), body }, new Metadata());
    return receiveAdapter(stream);
  }

  reportFailure(task: Task, message = 'test failure') {
    const body = proto.bodies.reportFailure.encode({ runId: task.runId, round: task.round, taskId: task.taskId, reason: 'FAILURE_REASON_INTERNAL', message });
    return callUnary(this.fleet, 'ReportFailure', { auth: this.auth('fleet', 'ReportFailure', body), body });
  }

  /** Uploads `delta` for `task` (a dense update); `header` overrides header fields, `manifest` the manifest. */
  async push(
    task: Task,
    delta: ReadonlyMap<string, HostTensor> | EncodedTensors,
    options: { numExamples?: number; metrics?: Record<string, number>; manifest?: MessageInput<TensorManifest>; kind?: string } = {},
  ): Promise<PushUpdateResponse> {
    const encoded = 'manifest' in delta && 'chunks' in delta ? (delta as EncodedTensors) : encodeTensors(delta as ReadonlyMap<string, HostTensor>);
    const body = proto.bodies.updateHeader.encode({
      runId: task.runId,
      round: task.round,
      taskId: task.taskId,
      kind: (options.kind ?? 'UPDATE_KIND_DENSE') as 'UPDATE_KIND_DENSE',
      numExamples: options.numExamples ?? 10,
      metrics: options.metrics ?? { loss: 0.5 },
      manifest: options.manifest ?? encoded.manifest,
    });
    const { stream, response } = clientStreamCall<MessageInput<PushUpdateRequest>, PushUpdateResponse>((cb) => this.fleet.PushUpdate(new Metadata(), {}, cb));
    await writeAll(stream, pushUpdateMessages(this.auth('fleet', 'PushUpdate', body), body, encoded)).catch(() => undefined);
    return response;
  }

  close(): void {
    this.enrollment.close();
    this.fleet.close();
  }
}

/** Encodes without the codec's checks (so NaN and odd dtypes can be sent), one chunk per tensor. */
export function encodeUnchecked(tensors: ReadonlyMap<string, HostTensor>, dtype = 'f32'): EncodedTensors {
  const entries: WireTensorEntry[] = [];
  const chunks: WireChunk[] = [];
  const hash = createHash('sha256');
  let offset = 0;
  for (const [name, t] of tensors) {
    const data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    entries.push({ name, shape: [...t.shape], dtype, byteOffset: offset, byteLength: data.length });
    offset += data.length;
    hash.update(data);
    chunks.push({ index: chunks.length, data, runningSha256: hash.copy().digest() });
  }
  return { manifest: { entries, totalBytes: offset, sha256: hash.digest() }, chunks };
}

/** A delta for every upload tensor of `task`, filled by f(tensorIndex, i). */
export function makeDelta(task: Task, shapes: ReadonlyMap<string, HostTensor>, f: (t: number, i: number) => number): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  task.uploadTensors.forEach((name, t) => {
    const g = shapes.get(name)!;
    const data = new Float32Array(g.data.length);
    for (let i = 0; i < data.length; i++) data[i] = f(t, i);
    out.set(name, { shape: [...g.shape], data });
  });
  return out;
}

/** Polls `check` every 20 ms until it returns a value other than undefined (or fails after `ms`). */
export async function waitFor<T>(check: () => Promise<T | undefined> | T | undefined, ms = 10_000, what = 'condition'): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
