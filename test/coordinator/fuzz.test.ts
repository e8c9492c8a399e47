/**
 * Fuzzing a real coordinator process: 10,000+ mutations (byte flips, truncations, extensions) of valid serialized
 * requests for every service, sent as raw bytes through a grpc-js client with identity serializers. Afterwards the
 * process must still be alive, report SERVING and accept valid calls; no mutation may produce INTERNAL.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import seedrandom from 'seedrandom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAdminToken } from '../../src/auth/admin-token.js';
import { encodeTensors } from '../../src/wire/codec.js';
import type { Task } from '../../src/wire/messages.js';
import { Admin, adminMetadata, makeDelta, proto, runJson, tempDir, TestClient, writeTestModel } from './helpers.js';
import { BUILT, kill9, startProcess, type Running } from './process.js';

const MUTATIONS = 10_000;
const CONCURRENCY = 64;

interface Sample {
  readonly path: string;
  readonly bytes: Buffer;
  readonly stream: boolean;
  readonly admin: boolean;
}

type Serializer = (value: unknown) => Buffer;

function serializerOf(service: string, method: string): Serializer {
  const def = proto.packageDefinition[`lethe.v1.${service}`] as unknown as Record<string, { requestSerialize: Serializer }>;
  return def[method]!.requestSerialize;
}

function mutate(bytes: Buffer, rand: () => number): Buffer {
  const pick = rand();
  const at = Math.floor(rand() * Math.max(1, bytes.length));
  if (pick < 0.5) {
    const out = Buffer.from(bytes);
    const flips = 1 + Math.floor(rand() * 4);
    for (let i = 0; i < flips && out.length > 0; i++) out[Math.floor(rand() * out.length)]! ^= 1 << Math.floor(rand() * 8);
    return out;
  }
  if (pick < 0.75) return bytes.subarray(0, at);
  const extra = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 16) }, () => Math.floor(rand() * 256)));
  return rand() < 0.5 ? Buffer.concat([bytes, extra]) : Buffer.concat([bytes.subarray(0, at), extra, bytes.subarray(at)]);
}

describe('coordinator fuzz', () => {
  const dir = tempDir('lethe-fuzz-');
  const dataDir = join(dir.path, 'data');
  let running: Running;
  let token: string;
  let clients: TestClient[];
  let tasks: Task[];
  let admin: Admin;

  beforeAll(async () => {
    if (!existsSync(BUILT)) throw new Error('dist/coordinator is missing: run `npx tsc -p .` (npm test builds first)');
    const baseModel = await writeTestModel(dir.path);
    running = await startProcess(dataDir);
    token = await readAdminToken(dataDir);
    admin = new Admin(running.address, token);
    const join = await admin.joinToken(3);
    clients = [new TestClient(running.address), new TestClient(running.address)];
    for (const c of clients) {
      await c.enroll(join);
      await c.heartbeat();
    }
    await admin.createRun(runJson(baseModel, { rounds: 1, min_clients: 2, round_deadline_s: 300 }));
    tasks = (await Promise.all(clients.map((c) => c.pullTask(5000)))) as Task[];
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    admin.close();
    await kill9(running);
    dir.remove();
  });

  /** One valid request per method, serialized. */
  function samples(): Sample[] {
    const c = clients[0]!;
    const task = tasks[0]!;
    const signed = (service: 'fleet' | 'enrollment', grpcService: string, method: string, body: Buffer): Sample => ({
      path: `/lethe.v1.${grpcService}/${method}`,
      bytes: serializerOf(grpcService, method)({ auth: c.auth(service, method, body), body }),
      stream: false,
      admin: false,
    });
    const b = proto.bodies;
    const encoded = encodeTensors(makeDelta(task, new Map(task.uploadTensors.map((n) => [n, { shape: [4, 4], data: new Float32Array(16) }])), () => 0.01));
    const header = b.updateHeader.encode({ runId: task.runId, round: task.round, taskId: task.taskId, kind: 'UPDATE_KIND_DENSE', numExamples: 3, manifest: encoded.manifest });
    const adminCall = (method: string, request: unknown): Sample => ({
      path: `/lethe.v1.AdminService/${method}`,
      bytes: serializerOf('AdminService', method)(request),
      stream: false,
      admin: true,
    });
    return [
      signed('fleet', 'FleetService', 'Heartbeat', b.heartbeat.encode({ state: 'CLIENT_STATE_TRAINING', taskId: task.taskId, progress: 0.5 })),
      signed('fleet', 'FleetService', 'PullTask', b.pullTask.encode({ waitMs: 0 })),
      signed('fleet', 'FleetService', 'FetchAdapter', b.fetchAdapter.encode({ runId: task.runId, sha256: task.adapterSha256 })),
      signed('fleet', 'FleetService', 'ReportFailure', b.reportFailure.encode({ runId: task.runId, round: task.round, taskId: task.taskId, reason: 'FAILURE_REASON_DATA' })),
      signed('enrollment', 'EnrollmentService', 'UpdateCapabilities', b.capabilities.encode({ backend: 'cpu', modes: ['TRAINING_MODE_BACKPROP'] })),
      signed('enrollment', 'EnrollmentService', 'Enroll', b.enroll.encode({ joinToken: 'lethe_jt_' + 'A'.repeat(43), publicKey: c.publicKey, name: 'x' })),
      {
        path: '/lethe.v1.FleetService/PushUpdate',
        bytes: serializerOf('FleetService', 'PushUpdate')({ auth: c.auth('fleet', 'PushUpdate', header), body: header, chunk: encoded.chunks[0] }),
        stream: true,
        admin: false,
      },
      adminCall('Status', {}),
      adminCall('GetRun', { runId: task.runId }),
      adminCall('ListRounds', { runId: task.runId, pageSize: 5 }),
      adminCall('ListClients', { includeRevoked: true }),
      adminCall('CreateJoinToken', { ttlSeconds: 60, uses: 1, note: 'fuzz' }),
      adminCall('CreateRun', { extraJson: JSON.stringify({ name: 'fuzz', base_model: 'builtin:nope', rounds: 1 }) }),
      {
        path: '/lethe.v1.InferenceService/Predict',
        bytes: serializerOf('InferenceService', 'Predict')({ runId: task.runId, text: 'hello world' }),
        stream: false,
        admin: true,
      },
    ];
  }

  it('fuzz – 10,000 mutated messages leave the coordinator alive, SERVING and correct, with no INTERNAL status', async () => {
    // Arrange
    const raw = new Client(running.address, credentials.createInsecure());
    const rand = seedrandom('lethe-fuzz');
    const base = samples();
    const codes = new Map<number, number>();
    const send = (s: Sample, bytes: Buffer): Promise<number> =>
      new Promise((resolve) => {
        const metadata = s.admin ? adminMetadata(token) : new Metadata();
        const done = (err: ServiceError | null): void => resolve(err ? err.code : status.OK);
        const options = { deadline: Date.now() + 20_000 };
        if (s.stream) {
          const call = raw.makeClientStreamRequest(s.path, (b: Buffer) => b, (b: Buffer) => b, metadata, options, done);
          call.write(bytes);
          call.end();
        } else {
          raw.makeUnaryRequest(s.path, (b: Buffer) => b, (b: Buffer) => b, bytes, metadata, options, done);
        }
      });

    // Act
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < MUTATIONS) {
        const s = base[next++ % base.length]!;
        const code = await send(s, mutate(s.bytes, rand));
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    // Assert: every call answered, none with INTERNAL/UNKNOWN, the process alive and serving
    expect([...codes.values()].reduce((a, b) => a + b, 0)).toBe(MUTATIONS);
    expect(running.stderr().split('\n').filter((l) => l.includes('INTERNAL')).slice(0, 8)).toEqual([]); // names the cause
    expect(codes.get(status.INTERNAL) ?? 0).toBe(0);
    expect(codes.get(status.UNKNOWN) ?? 0).toBe(0);
    expect(running.child.exitCode).toBeNull();
    const health = await new Promise<Buffer>((resolve, reject) =>
      raw.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res!))),
    );
    expect([...health]).toEqual([0x08, 0x01]); // status: SERVING
    raw.close();
    await clients[1]!.heartbeat();
    const ack = await clients[1]!.push(tasks[1]!, makeDelta(tasks[1]!, await clients[1]!.fetchAdapter(tasks[1]!), () => 0.02));
    expect(ack.result).toBe('RESULT_ACCEPTED');
  });
});
