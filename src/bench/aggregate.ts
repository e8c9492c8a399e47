/**
 * Coordinator-side aggregation benchmark (everything but training). MB = 10^6 bytes.
 *
 *   memcpy_gbps, fold_gbps – src/bench/aggregate-fold.ts: folding K updates into one accumulator against copying them.
 *   ingest_mbps            – K clients upload dense updates of `ingestBytes` each to a real coordinator over gRPC on
 *                            127.0.0.1 in 1 MiB chunks, concurrently; the coordinator verifies every chunk's running
 *                            digest, stores each payload durably, and when all are in reads them back and folds them
 *                            into the new global adapter. Update bytes / wall time from the first byte sent to the
 *                            round closed, in the run's second round (steady state; ingest_first_round_mbps is the
 *                            first, which also compiles the code paths). The clients run in a process of their own
 *                            (aggregate-senders.ts), as clients do. ingest_cpu_mbps divides by the coordinator
 *                            process's CPU time instead: comparable across machine loads.
 *   ingest_floor_mbps      – the same sender process and updates against a gRPC server that only decodes and drops
 *                            them, in the same run: what the transport alone moves here, the ceiling of ingest_mbps.
 *   round_overhead_s_200   – one round with 200 enrolled clients that each pull the task, fetch the adapter and upload
 *                            a prepared update at once: seconds from the round opening to it closing.
 *
 * The base model of these runs is a config.json only: the coordinator needs the architecture to lay out the adapter,
 * and nothing here loads weights (no evaluation, no Predict).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata } from '@grpc/grpc-js';
import { exportPrivateKeyPem } from '../auth/keys.js';
import { Coordinator } from '../coordinator/coordinator.js';
import type { CoordinatorEvent } from '../coordinator/events.js';
import { layoutBytes } from '../coordinator/layout.js';
import { withoutHeapFloor } from '../memory-tuning.js';
import { hfConfigJson } from '../model/checkpoint.js';
import type { GPT2Config } from '../model/gpt2.js';
import { loadLetheProto, type LetheProto } from '../wire/proto.js';
import type { MessageInput, PushUpdateRequest, PushUpdateResponse, Task } from '../wire/messages.js';
import { bindServer, clientStreamHandler, createServer } from '../wire/server.js';
import { callUnary, createClient, type AdminClient } from '../wire/services.js';
import { measureFold } from './aggregate-fold.js';
import { replyOf } from './child-messages.js';
import type { SenderJob } from './aggregate-senders.js';
import { BenchClient, preparedUpdate } from './bench-client.js';

export interface AggregateBenchOptions {
  /** Bytes of each update in the ingest measurement (≈; set by the LoRA rank on a GPT-2-small-wide layout). Default 32 MB. */
  readonly ingestBytes?: number;
  /** Concurrent uploaders in the ingest measurement. Default 4. */
  readonly ingestClients?: number;
  /** Clients in the round-overhead measurement. Default 200. */
  readonly roundClients?: number;
  /** Bytes per update in the fold micro-benchmark. Default 16 MiB. */
  readonly foldBytes?: number;
}

export interface AggregateBenchResult {
  readonly memcpy_gbps: number;
  readonly fold_gbps: number;
  readonly fold_ratio: number;
  readonly ingest_mbps: number;
  /** Update bytes per CPU-second of the coordinator's process: what one core does, whatever the machine's load. */
  readonly ingest_cpu_mbps: number;
  /** ingest_mbps of the run's first round (IngestMeasurement.firstRoundMbps). */
  readonly ingest_first_round_mbps: number;
  /** The transport floor of the same run (IngestMeasurement.floorMbps), and ingest_mbps as a fraction of it. */
  readonly ingest_floor_mbps: number;
  readonly ingest_of_floor: number;
  readonly ingest_upload_s: number;
  readonly ingest_close_s: number;
  readonly ingest_bytes_per_client: number;
  readonly ingest_clients: number;
  readonly round_overhead_s_200: number;
  readonly round_clients: number;
}

/**
 * Lightweight clients (the round-overhead measurements here and in nats.ts): in each of `rounds` rounds, each client
 * long-polls for its task, fetches the adapter and uploads a prepared update of the SMALL model's r 8 shapes at once,
 * no training. `uploaded(n)` is called as each client's upload of its n-th round (from 1) is acknowledged.
 */
export function answerTasks(clients: readonly BenchClient[], rounds = 1, uploaded: (round: number) => void = () => undefined): Promise<void[]> {
  return Promise.all(
    clients.map(async (c, k) => {
      for (let n = 0; n < rounds; n++) {
        const task = await c.pullTask(30_000);
        await c.fetch(task);
        await c.push(task, preparedUpdate(task, uploadShapes(task, SMALL, 8), k));
        uploaded(n + 1);
      }
    }),
  );
}

/** A coordinator in a temporary data dir with `n` enrolled, live clients and a base model of architecture `model`. */
async function setUp(model: GPT2Config, n: number) {
  const root = await mkdtemp(join(tmpdir(), 'lethe-bench-agg-'));
  const baseModel = join(root, 'base');
  await mkdir(baseModel);
  await writeFile(join(baseModel, 'config.json'), JSON.stringify(hfConfigJson(model)));
  const coordinator = new Coordinator({ dataDir: join(root, 'data'), port: 0, log: () => undefined, waitForClientsMs: 20, maxUpdateBytes: 1 << 30 });
  await coordinator.start();
  const proto = loadLetheProto();
  const admin = createClient(proto, 'admin', coordinator.address, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${coordinator.adminToken}`);
  const { token } = await callUnary(admin, 'CreateJoinToken', { ttlSeconds: 3600, uses: n }, { metadata });
  // Clients share a few channels, as many processes behind one NAT would share a few connections.
  const channels = Array.from({ length: Math.min(n, 8) }, () => createClient(proto, 'fleet', coordinator.address, credentials.createInsecure()));
  const clients = Array.from({ length: n }, (_, i) => new BenchClient(proto, channels[i % channels.length]!));
  await Promise.all(clients.map((c) => c.enroll(coordinator.address, token)));
  await Promise.all(clients.map((c) => c.heartbeat()));
  return {
    coordinator,
    clients,
    baseModel,
    createRun: (config: Record<string, unknown>) => callUnary(admin as AdminClient, 'CreateRun', { extraJson: JSON.stringify({ base_model: baseModel, ...config }) }, { metadata }),
    async tearDown(): Promise<void> {
      admin.close();
      for (const c of channels) c.close();
      await coordinator.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Resolves with the time of the coordinator's first event matching `match` (its own subscription). */
function nextEvent(coordinator: Coordinator, match: (e: CoordinatorEvent) => boolean): Promise<number> {
  const events = coordinator.status();
  return (async () => {
    for await (const e of events) if (match(e)) return performance.now();
    throw new Error('coordinator closed before the event');
  })();
}

/** GPT-2-small width and depth; the LoRA rank sets the update size (all four projections adapted). */
export const WIDE: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 128, nEmbd: 768, nLayer: 12, nHead: 12, layerNormEpsilon: 1e-5 });
export const SMALL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });
export const ALL_TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];

export interface IngestMeasurement {
  /** Update bytes per second of wall time, first byte sent to round closed, in the run's second round. */
  readonly mbps: number;
  /** Update bytes per CPU-second of the coordinator's process over the same span. */
  readonly cpuMbps: number;
  /** Seconds from the first byte sent to the last update acknowledged, and from then to the round closed. */
  readonly uploadSeconds: number;
  readonly closeSeconds: number;
  readonly bytes: number;
  /** The same for the run's first round, in a coordinator process that has not run a round yet. */
  readonly firstRoundMbps: number;
  /**
   * The baseline of the same run: the same sender process pushing the same updates to a gRPC server that decodes
   * each message and drops it (no signature, digest, storage or fold). What gRPC alone moves on this machine.
   */
  readonly floorMbps: number;
}

/**
 * A process of uploading clients (aggregate-senders.ts), told its job and then when to go. It runs as clients do:
 * without the coordinator's heap floor (memory-tuning.ts), which `lethe bench` gives this process.
 */
export class SenderProcess {
  private readonly child: ChildProcess = fork(fileURLToPath(new URL('./aggregate-senders.js', import.meta.url)), [], {
    serialization: 'advanced',
    stdio: 'inherit',
    execArgv: withoutHeapFloor(),
  });

  /**
   * Hands over the job: these enrolled clients (their identities) upload for `tasks` to `addressOf(k)`; resolves once
   * every update is encoded and the clients are ready to push.
   */
  async prepare(
    clients: readonly BenchClient[],
    tasks: readonly Task[],
    shapes: ReadonlyMap<string, readonly number[]>,
    addressOf: (k: number) => string,
  ): Promise<void> {
    const job: SenderJob = {
      shapes: [...shapes],
      clients: clients.map((c, k) => ({ id: c.id, privateKeyPem: exportPrivateKeyPem(c.keys.privateKey), task: tasks[k]!, address: addressOf(k) })),
    };
    this.child.send(job);
    await replyOf(this.child, 'ingest senders', 'ready');
  }

  /** Every client pushes at once; resolves when all are acknowledged. */
  async go(): Promise<void> {
    const done = replyOf(this.child, 'ingest senders', 'done');
    this.child.send('go');
    await done;
  }

  /** The process's id (undefined if it could not start). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  kill(): void {
    this.child.kill();
  }
}

/** A FleetService that decodes every PushUpdate message and drops it: the transport floor of measureIngest. */
async function startDrainServer(proto: LetheProto): Promise<{ address: string; close: () => void }> {
  const server = createServer();
  server.addService(proto.services.fleet, {
    PushUpdate: clientStreamHandler(async (call: AsyncIterable<PushUpdateRequest>): Promise<MessageInput<PushUpdateResponse>> => {
      let bytes = 0;
      for await (const m of call) bytes += m.chunk?.data.length ?? 0;
      return { result: 'RESULT_ACCEPTED', sha256: Buffer.alloc(32), storedBytes: bytes };
    }),
  });
  const port = await bindServer(server, '127.0.0.1:0');
  return { address: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

/**
 * Two rounds of one run: a coordinator serves many rounds, and the first in a process also pays for compiling its
 * code paths and for fresh memory, so the second is the steady state reported; the first is reported beside it.
 * Before each round's uploads, the same updates go to a drain server (the floor).
 */
export async function measureIngest(bytesPerClient: number, clientCount: number): Promise<IngestMeasurement> {
  // lora_B floats per layer: (3C + C + 4C + C)·r = 9Cr.
  const r = Math.max(1, Math.round(bytesPerClient / 4 / (9 * WIDE.nEmbd * WIDE.nLayer)));
  // Fork before the coordinator exists: fork marks every page of this process copy-on-write, and the coordinator would
  // then pay a page fault on its first write to each page of its heap during the measurement.
  const senders = new SenderProcess();
  const env = await setUp(WIDE, clientCount);
  const drain = await startDrainServer(loadLetheProto());
  try {
    await env.createRun({ name: 'ingest', rounds: 2, min_clients: clientCount, round_deadline_s: 600, lora: { r, alpha: 2 * r, targets: ALL_TARGETS } });
    // Resolves once the updates are encoded, with the push (timed from its call).
    const preparePush = async (address: string, tasks: readonly Task[], shapes: ReadonlyMap<string, readonly number[]>): Promise<() => Promise<void>> => {
      await senders.prepare(env.clients, tasks, shapes, () => address);
      return () => senders.go();
    };
    const round = async () => {
      const tasks = await Promise.all(env.clients.map((c) => c.pullTask(30_000)));
      const shapes = uploadShapes(tasks[0]!, WIDE, r);
      const bytes = layoutBytes(shapes);
      const total = bytes * clientCount;
      const floorPush = await preparePush(drain.address, tasks, shapes);
      const floorStart = performance.now();
      await floorPush();
      const floorSeconds = (performance.now() - floorStart) / 1000;
      const push = await preparePush(env.coordinator.address, tasks, shapes);
      const closed = nextEvent(env.coordinator, (e) => e.type === 'round_closed' || e.type === 'round_failed');
      let accepted = 0;
      const allIn = nextEvent(env.coordinator, (e) => e.type === 'update_accepted' && ++accepted === clientCount);
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      const [, uploaded, end] = await Promise.all([push(), allIn, closed]);
      const cpu = process.cpuUsage(cpuStart);
      return {
        mbps: total / ((end - start) / 1000) / 1e6,
        cpuMbps: total / ((cpu.user + cpu.system) / 1e6) / 1e6,
        uploadSeconds: (uploaded - start) / 1000,
        closeSeconds: (end - uploaded) / 1000,
        bytes,
        floorMbps: total / floorSeconds / 1e6,
      };
    };
    const first = await round();
    return { ...(await round()), firstRoundMbps: first.mbps };
  } finally {
    senders.kill();
    drain.close();
    await env.tearDown();
  }
}

export async function measureRoundOverhead(clientCount: number): Promise<number> {
  const env = await setUp(SMALL, clientCount);
  try {
    const opened = nextEvent(env.coordinator, (e) => e.type === 'round_opened');
    const closed = nextEvent(env.coordinator, (e) => e.type === 'round_closed' || e.type === 'round_failed');
    // Everyone long-polls before the run exists, like idle clients waiting for work.
    const work = answerTasks(env.clients);
    await env.createRun({ name: 'overhead', rounds: 1, min_clients: clientCount, round_deadline_s: 600, lora: { r: 8, alpha: 16 } });
    const [t0, t1] = await Promise.all([opened, closed, work]);
    return (t1 - t0) / 1000;
  } finally {
    await env.tearDown();
  }
}

/** The shapes of `task`'s upload tensors on `model` with LoRA rank r: each lora_B [d_out, r], the 2-label head [2, C]. */
export function uploadShapes(task: Task, model: GPT2Config, r: number): Map<string, number[]> {
  const c = model.nEmbd;
  return new Map(
    task.uploadTensors.map((name) => {
      if (name === 'score.weight') return [name, [2, c]];
      const out = name.includes('c_attn') ? 3 * c : name.includes('c_fc') ? 4 * c : c;
      return [name, [out, r]];
    }),
  );
}

export async function benchAggregate(options: AggregateBenchOptions = {}): Promise<AggregateBenchResult> {
  const fold = measureFold(options.foldBytes ?? 16 << 20);
  const ingestClients = options.ingestClients ?? 4;
  const ingest = await measureIngest(options.ingestBytes ?? 32e6, ingestClients);
  const roundClients = options.roundClients ?? 200;
  const overhead = await measureRoundOverhead(roundClients);
  return {
    memcpy_gbps: fold.memcpy_gbps,
    fold_gbps: fold.fold_gbps,
    fold_ratio: fold.fold_gbps / fold.memcpy_gbps,
    ingest_mbps: ingest.mbps,
    ingest_cpu_mbps: ingest.cpuMbps,
    ingest_upload_s: ingest.uploadSeconds,
    ingest_close_s: ingest.closeSeconds,
    ingest_first_round_mbps: ingest.firstRoundMbps,
    ingest_floor_mbps: ingest.floorMbps,
    ingest_of_floor: ingest.mbps / ingest.floorMbps,
    ingest_bytes_per_client: ingest.bytes,
    ingest_clients: ingestClients,
    round_overhead_s_200: overhead,
    round_clients: roundClients,
  };
}
