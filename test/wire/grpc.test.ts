import { randomBytes } from 'node:crypto';
import { credentials, Metadata, status, type ServerReadableStream } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostTensor, type HostTensor } from '../../src/tensors/host.js';
import { encodeTensors, hexDigest, TensorAssembler, type AssemblyLimits } from '../../src/wire/codec.js';
import { RpcError } from '../../src/wire/errors.js';
import type { MessageInput, PushUpdateRequest, PushUpdateResponse, RequestAuth, SignedRequest } from '../../src/wire/messages.js';
import { loadLetheProto, methodPath, type LetheProto } from '../../src/wire/proto.js';
import { addStandardServices, bindServer, clientStreamHandler, createServer, serverStreamHandler } from '../../src/wire/server.js';
import { callUnary, clientStreamCall, createClient, type FleetClient } from '../../src/wire/services.js';
import { firstAndRest, fetchAdapterMessages, pushUpdateMessages, receiveAdapter, receivePayload, writeAll } from '../../src/wire/transfer.js';
import { ProtocolError } from '../../src/wire/errors.js';
import { seedUploadWire } from '../../src/wire/bench.js';

const MiB = 1 << 20;

/** 3 MiB of adapter-like tensors whose sizes put chunk boundaries inside tensors. */
function adapter(): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const shapes: [string, number[]][] = [
    ['h.0.attn.c_attn.lora_B.weight', [2304, 96]],
    ['h.1.attn.c_attn.lora_B.weight', [2304, 96]],
    ['h.2.mlp.c_fc.lora_B.weight', [3072, 112]],
    ['score.weight', [2, 768]],
  ];
  for (const [name, shape] of shapes) {
    const t = hostTensor(shape);
    for (let i = 0; i < t.data.length; i++) t.data[i] = Math.cos(i * 0.37 + name.length) * 1e-2;
    out.set(name, t);
  }
  return out;
}

function sameBytes(a: Map<string, HostTensor>, b: Map<string, HostTensor>): boolean {
  if ([...a.keys()].join() !== [...b.keys()].join()) return false;
  return [...a].every(([n, t]) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(b.get(n)!.data.buffer)));
}

const fakeAuth: MessageInput<RequestAuth> = {
  clientId: 'client-1',
  timestampMs: 1_700_000_000_000,
  nonce: randomBytes(16),
  signature: randomBytes(64),
};

/** A minimal FleetService built from the codec: stores uploads (idempotent per run+round+client), serves the global adapter. */
class TestFleet {
  readonly uploads = new Map<string, { sha256: Buffer; tensors: Map<string, HostTensor> }>();
  constructor(
    private readonly proto: LetheProto,
    private readonly globalAdapter: ReturnType<typeof encodeTensors>,
    private readonly limits: Partial<AssemblyLimits> = {},
  ) {}

  handlers() {
    return {
      FetchAdapter: serverStreamHandler<SignedRequest, unknown>(async (request, call) => {
        const body = this.proto.bodies.fetchAdapter.decode(request.body);
        if (!Buffer.from(this.globalAdapter.manifest.sha256).equals(body.sha256)) {
          throw Object.assign(new Error(`no adapter ${body.sha256.toString('hex')}`), { code: 'not_found' });
        }
        await writeAll(call, fetchAdapterMessages(this.globalAdapter));
      }),
      PushUpdate: clientStreamHandler((call: ServerReadableStream<PushUpdateRequest, unknown>) => this.ingest(call)),
    };
  }

  private async ingest(call: AsyncIterable<PushUpdateRequest>): Promise<MessageInput<PushUpdateResponse>> {
    const { first, rest } = await firstAndRest(call);
    if (!first?.auth) throw new ProtocolError('PushUpdate must start with auth and header', 'missing_header');
    const header = this.proto.bodies.updateHeader.decode(first.body);
    if (!header.manifest) throw new ProtocolError('update header has no manifest', 'missing_header');
    const key = `${header.runId}/${header.round}/${first.auth.clientId}`;
    const stored = this.uploads.get(key);
    if (stored?.sha256.equals(header.manifest.sha256)) return { result: 'RESULT_DUPLICATE', sha256: stored.sha256 };
    if (stored) throw Object.assign(new Error('a different update was already stored for this round'), { code: 'already_exists' });
    const tensors = await receivePayload(new TensorAssembler(header.manifest, this.limits), first.chunk, rest);
    this.uploads.set(key, { sha256: header.manifest.sha256, tensors });
    return { result: 'RESULT_ACCEPTED', sha256: header.manifest.sha256, storedBytes: header.manifest.totalBytes };
  }
}

describe('wire – gRPC on 127.0.0.1', () => {
  const proto = loadLetheProto();
  const globalTensors = adapter();
  const globalAdapter = encodeTensors(globalTensors);
  const fleet = new TestFleet(proto, globalAdapter, { maxTotalBytes: 4 * MiB });
  const server = createServer();
  let client: FleetClient;
  let address: string;

  beforeAll(async () => {
    server.addService(proto.services.fleet, fleet.handlers());
    addStandardServices(server, proto.protoPaths);
    address = `127.0.0.1:${await bindServer(server, '127.0.0.1:0')}`;
    client = createClient(proto, 'fleet', address, credentials.createInsecure());
  });

  afterAll(() => {
    client.close();
    server.forceShutdown();
  });

  async function push(runId: string, tensors: Map<string, HostTensor>): Promise<PushUpdateResponse> {
    const encoded = encodeTensors(tensors);
    const body = proto.bodies.updateHeader.encode({ runId, round: 1, kind: 'UPDATE_KIND_DENSE', numExamples: 10, manifest: encoded.manifest });
    const { stream, response } = clientStreamCall<MessageInput<PushUpdateRequest>, PushUpdateResponse>((cb) => client.PushUpdate(new Metadata(), {}, cb));
    await writeAll(stream, pushUpdateMessages(fakeAuth, body, encoded));
    return response;
  }

  it('wire – a 3 MiB adapter downloads byte-exact through FetchAdapter', async () => {
    // Prepare
    const body = proto.bodies.fetchAdapter.encode({ runId: 'run-1', sha256: globalAdapter.manifest.sha256 });
    expect(globalAdapter.manifest.totalBytes).toBeGreaterThanOrEqual(3 * MiB);
    // Execute
    const { manifest, tensors } = await receiveAdapter(client.FetchAdapter({ auth: fakeAuth, body }, new Metadata()));
    // Assert
    expect(hexDigest(manifest.sha256)).toBe(hexDigest(globalAdapter.manifest.sha256));
    expect(sameBytes(tensors, globalTensors)).toBe(true);
  });

  it('wire – a 3 MiB update uploads byte-exact through PushUpdate and a retry is recognised as a duplicate', async () => {
    // Execute
    const first = await push('run-up', globalTensors);
    const retry = await push('run-up', globalTensors);
    // Assert
    expect(first.result).toBe('RESULT_ACCEPTED');
    expect(first.storedBytes).toBe(globalAdapter.manifest.totalBytes);
    expect(retry.result).toBe('RESULT_DUPLICATE');
    expect(hexDigest(retry.sha256)).toBe(hexDigest(globalAdapter.manifest.sha256));
    expect(sameBytes(fleet.uploads.get('run-up/1/client-1')!.tensors, globalTensors)).toBe(true);
  });

  it('wire – a different payload for the same run, round and client fails with ALREADY_EXISTS', async () => {
    await push('run-conflict', new Map([['score.weight', hostTensor([2, 2], new Float32Array([1, 2, 3, 4]))]]));
    const err = await push('run-conflict', new Map([['score.weight', hostTensor([2, 2], new Float32Array([1, 2, 3, 5]))]])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).status).toBe(status.ALREADY_EXISTS);
    expect((err as RpcError).code).toBe('already_exists');
  });

  it('wire – an update over the receiver limit fails with RESOURCE_EXHAUSTED naming the limit', async () => {
    const big = new Map([['x', hostTensor([5 * MiB / 4])]]);
    const err = (await push('run-big', big).catch((e: unknown) => e)) as RpcError;
    expect(err.status).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.code).toBe('payload_too_large');
    expect(err.message).toContain('RESOURCE_EXHAUSTED (payload_too_large)');
  });

  it('wire – a corrupted chunk fails the upload with INVALID_ARGUMENT', async () => {
    // Prepare: flip one bit of the second chunk after encoding, as a faulty link would.
    const encoded = encodeTensors(globalTensors);
    const chunks = encoded.chunks.map((c) => (c.index === 1 ? { ...c, data: Buffer.from(c.data).fill(7, 100, 101) } : c));
    const body = proto.bodies.updateHeader.encode({ runId: 'run-bad', round: 1, manifest: encoded.manifest });
    const { stream, response } = clientStreamCall<MessageInput<PushUpdateRequest>, PushUpdateResponse>((cb) => client.PushUpdate(new Metadata(), {}, cb));
    // Execute
    await writeAll(stream, pushUpdateMessages(fakeAuth, body, { ...encoded, chunks })).catch(() => undefined);
    const err = (await response.catch((e: unknown) => e)) as RpcError;
    // Assert
    expect(err.status).toBe(status.INVALID_ARGUMENT);
    expect(err.code).toBe('chunk_hash_mismatch');
  });

  it('wire – fetching an unknown adapter fails with NOT_FOUND', async () => {
    const body = proto.bodies.fetchAdapter.encode({ runId: 'run-1', sha256: Buffer.alloc(32) });
    const err = await receiveAdapter(client.FetchAdapter({ auth: fakeAuth, body }, new Metadata())).catch((e: unknown) => e);
    expect((err as { code: number }).code).toBe(status.NOT_FOUND);
  });

  it('wire – the server opens its HTTP/2 flow-control window for uploads', () => {
    expect(server.flowControlApplied).toBe(true);
  });

  it('wire – an unimplemented method answers UNIMPLEMENTED through callUnary', async () => {
    const body = proto.bodies.heartbeat.encode({ state: 'CLIENT_STATE_IDLE' });
    const err = (await callUnary(client, 'Heartbeat', { auth: fakeAuth, body }).catch((e: unknown) => e)) as RpcError;
    expect(err).toBeInstanceOf(RpcError);
    expect(err.status).toBe(status.UNIMPLEMENTED);
    expect(methodPath('fleet', 'Heartbeat')).toBe('/lethe.v1.FleetService/Heartbeat');
  });

  it('wire – the health service answers SERVING for the server and each lethe.v1 service', async () => {
    const { service: healthService } = await import('grpc-health-check');
    const { makeGenericClientConstructor } = await import('@grpc/grpc-js');
    const Health = makeGenericClientConstructor(healthService as never, 'Health');
    const health = new Health(address, credentials.createInsecure());
    try {
      for (const name of ['', 'lethe.v1.FleetService', 'lethe.v1.AdminService']) {
        const res = await new Promise<{ status: string }>((resolve, reject) =>
          (health as unknown as { check: (r: object, cb: (e: Error | null, r: { status: string }) => void) => void }).check({ service: name }, (e, r) => (e ? reject(e) : resolve(r))),
        );
        expect(res.status).toBe('SERVING');
      }
    } finally {
      health.close();
    }
  });

  it('wire – server reflection lists the lethe.v1 services', async () => {
    const { loadSync } = await import('@grpc/proto-loader');
    const { loadPackageDefinition } = await import('@grpc/grpc-js');
    const { createRequire } = await import('node:module');
    const reflectionProto = createRequire(import.meta.url).resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
    const pkg = loadPackageDefinition(loadSync(reflectionProto)) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (a: string, c: ReturnType<typeof credentials.createInsecure>) => { ServerReflectionInfo(): NodeJS.ReadWriteStream & { end(): void }; close(): void } } } };
    };
    const refl = new pkg.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
    try {
      const call = refl.ServerReflectionInfo();
      const reply = new Promise<{ listServicesResponse: { service: { name: string }[] } }>((resolve, reject) => {
        call.on('data', resolve);
        call.on('error', reject);
      });
      call.write({ listServices: '' } as never);
      const names = (await reply).listServicesResponse.service.map((s) => s.name);
      call.end();
      expect(names).toEqual(expect.arrayContaining(['lethe.v1.FleetService', 'lethe.v1.EnrollmentService', 'lethe.v1.AdminService', 'lethe.v1.InferenceService']));
    } finally {
      refl.close();
    }
  });
});

describe('wire – message sizes', () => {
  it('wire – a 4096-scalar seed upload is one PushUpdate message with under 512 bytes of framing', () => {
    const { bytes, messages } = seedUploadWire(loadLetheProto(), 4096);
    const framing = bytes - 4096 * 4;
    console.log(`seed upload: ${bytes} bytes on the wire for ${4096 * 4} payload bytes (${framing} bytes of framing)`);
    expect(messages).toBe(1);
    expect(framing).toBeLessThan(512);
  });
});
