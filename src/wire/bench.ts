/**
 * Ingest benchmark: how fast a coordinator takes in an update over PushUpdate on 127.0.0.1, counting everything the
 * receiving side does (gRPC framing, protobuf decoding, running-digest verification, copying into tensors, the
 * finiteness check). The sender's payload is encoded before the clock starts, as a client would have it ready.
 * MB = 10^6 bytes.
 *
 * Client and server share this process, so the wall-clock rate also pays for the sender, and on a busy machine for
 * other processes. `cpuMbps` divides by the CPU time the process used instead (sender included): a load-independent
 * lower bound on what one core does receiving.
 */
import { credentials, Metadata, type ServerReadableStream } from '@grpc/grpc-js';
import { hostTensor, type HostTensor } from '../tensors/host.js';
import { encodeTensors, TensorAssembler, type EncodedTensors } from './codec.js';
import { ProtocolError } from './errors.js';
import type { MessageInput, PushUpdateRequest, PushUpdateResponse } from './messages.js';
import type { LetheProto } from './proto.js';
import { bindServer, clientStreamHandler, createServer } from './server.js';
import { clientStreamCall, createClient, type FleetClient } from './services.js';
import { firstAndRest, pushUpdateMessages, receivePayload, writeAll } from './transfer.js';

export interface IngestBenchOptions {
  /** Update size in bytes (a multiple of 4). Default 32 MiB. */
  readonly totalBytes?: number;
  /** Timed uploads; the best is reported (the first also warms up the connection). Default 5. */
  readonly repeats?: number;
}

export interface IngestBenchResult {
  readonly totalBytes: number;
  /** Best wall time of one upload, seconds. */
  readonly seconds: number;
  readonly ingestMbps: number;
  /** Median over the repeats. */
  readonly medianMbps: number;
  /** Bytes per CPU-second of this process (user + system) in the best repeat. */
  readonly cpuMbps: number;
}

/** A LoRA-like update: 48 tensors of equal size, values from a cheap deterministic sequence. */
function syntheticUpdate(totalBytes: number): Map<string, HostTensor> {
  const tensors = new Map<string, HostTensor>();
  const count = 48;
  const per = Math.floor(totalBytes / 4 / count);
  for (let i = 0; i < count; i++) {
    const n = i === count - 1 ? totalBytes / 4 - per * (count - 1) : per;
    const t = hostTensor([n]);
    for (let j = 0; j < n; j++) t.data[j] = ((j * 2654435761) % 1000) * 1e-6 - 5e-4;
    tensors.set(`h.${i >> 2}.attn.c_attn.lora_B.weight.${i & 3}`, t);
  }
  return tensors;
}

async function ingest(proto: LetheProto, call: AsyncIterable<PushUpdateRequest>, maxTotalBytes: number): Promise<MessageInput<PushUpdateResponse>> {
  const { first, rest } = await firstAndRest(call);
  if (!first) throw new ProtocolError('empty PushUpdate stream', 'missing_header');
  const header = proto.bodies.updateHeader.decode(first.body);
  if (!header.manifest) throw new ProtocolError('update header has no manifest', 'missing_header');
  await receivePayload(new TensorAssembler(header.manifest, { maxTotalBytes }), first.chunk, rest);
  return { result: 'RESULT_ACCEPTED', sha256: header.manifest.sha256, storedBytes: header.manifest.totalBytes };
}

async function uploadOnce(proto: LetheProto, client: FleetClient, encoded: EncodedTensors): Promise<{ wall: number; cpu: number }> {
  const body = proto.bodies.updateHeader.encode({ runId: 'bench', round: 1, kind: 'UPDATE_KIND_DENSE', manifest: encoded.manifest });
  const auth = { clientId: 'bench', timestampMs: 0, nonce: Buffer.alloc(16), signature: Buffer.alloc(64) };
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  const { stream, response } = clientStreamCall<MessageInput<PushUpdateRequest>, PushUpdateResponse>((cb) => client.PushUpdate(new Metadata(), {}, cb));
  await writeAll(stream, pushUpdateMessages(auth, body, encoded));
  await response;
  const cpu = process.cpuUsage(cpuStart);
  return { wall: Number(process.hrtime.bigint() - start) / 1e9, cpu: (cpu.user + cpu.system) / 1e6 };
}

/** gRPC length prefix of every message. */
const GRPC_MESSAGE_PREFIX_BYTES = 5;

/**
 * Bytes on the wire (protobuf plus the gRPC length prefix, not HTTP/2 frame headers) of a FedKSeed upload of K
 * scalars with a realistic header: UUID ids, a 16-byte nonce, a 64-byte signature and three metrics. Returns the
 * size of the first message and the number of messages (1 for K ≤ 262144).
 */
export function seedUploadWire(proto: LetheProto, k = 4096): { bytes: number; messages: number } {
  const scalars = hostTensor([k]);
  for (let i = 0; i < k; i++) scalars.data[i] = Math.sin(i) * 1e-3;
  const encoded = encodeTensors(new Map([['seed_scalars', scalars]]));
  const body = proto.bodies.updateHeader.encode({
    runId: '0f6b3c1e-8a51-4f0e-9a3e-2b7d1c9e4f60',
    round: 137,
    taskId: 'a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
    kind: 'UPDATE_KIND_SEED_SCALARS',
    numExamples: 512,
    metrics: { loss: 0.6931, steps: 64, seconds: 12.5 },
    manifest: encoded.manifest,
  });
  const auth = { clientId: '7c9e6679-7425-40de-944b-e07fc1f90ae7', timestampMs: 1_700_000_000_000, nonce: Buffer.alloc(16, 0xa5), signature: Buffer.alloc(64, 0x5a) };
  const messages = pushUpdateMessages(auth, body, encoded);
  const bytes = proto.services.fleet.PushUpdate!.requestSerialize(messages[0]).length + GRPC_MESSAGE_PREFIX_BYTES;
  return { bytes, messages: messages.length };
}

/** Runs a loopback server and client in this process and times `repeats` uploads. */
export async function benchIngest(proto: LetheProto, options: IngestBenchOptions = {}): Promise<IngestBenchResult> {
  const totalBytes = options.totalBytes ?? 32 << 20;
  const repeats = options.repeats ?? 5;
  const encoded = encodeTensors(syntheticUpdate(totalBytes));
  const server = createServer();
  server.addService(proto.services.fleet, {
    PushUpdate: clientStreamHandler((call: ServerReadableStream<PushUpdateRequest, unknown>) => ingest(proto, call, totalBytes)),
  });
  const port = await bindServer(server, '127.0.0.1:0');
  const client = createClient(proto, 'fleet', `127.0.0.1:${port}`, credentials.createInsecure());
  try {
    const runs: { wall: number; cpu: number }[] = [];
    for (let i = 0; i < repeats; i++) runs.push(await uploadOnce(proto, client, encoded));
    const sorted = [...runs].sort((a, b) => a.wall - b.wall);
    const best = sorted[0]!;
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const leastCpu = Math.min(...runs.map((r) => r.cpu));
    const mbps = (seconds: number): number => totalBytes / 1e6 / seconds;
    return { totalBytes, seconds: best.wall, ingestMbps: mbps(best.wall), medianMbps: mbps(median.wall), cpuMbps: mbps(leastCpu) };
  } finally {
    client.close();
    server.forceShutdown();
  }
}
