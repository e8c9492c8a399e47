/**
 * Scaled-out coordinator benchmark: two real coordinator processes (`lethe coordinator start --nats …`) sharing one
 * NATS JetStream, with a fresh bucket prefix deleted afterwards. Timings come from the operator-facing event
 * subjects (round.started, round.aggregated) on the NATS bus. MB = 10^6 bytes. Everything but training.
 *
 *   ingest_mbps            – K clients (half on each coordinator) upload dense updates of `ingestBytes` each over gRPC
 *                            on 127.0.0.1 in 1 MiB chunks, concurrently, from a process of their own (as in
 *                            aggregate.ts, without the coordinators' heap floor); each coordinator verifies every chunk's
 *                            running digest, stores the payload in the JetStream object store and the record in KV;
 *                            the leader reads them all back from JetStream and folds them into the new adapter.
 *                            Update bytes / wall time from the first byte sent to round.aggregated: the median of
 *                            the run's rounds after the first (steady state; each in ingest_rounds_mbps), and
 *                            ingest_first_round_mbps the first, which also compiles the code paths.
 *   round_overhead_s_1000  – 1,000 enrolled clients, half on each coordinator, that long-poll for the task, fetch the
 *                            adapter and upload a prepared update at once, in every round of one run: seconds from
 *                            round.started to round.aggregated, the median of the rounds between the first and the
 *                            last (each in round_overhead_rounds_s; round_overhead_first_round_s is the first; see
 *                            measureRoundOverhead).
 *   *_cpu_s                – CPU seconds (user + system) the two coordinator processes, and a nats-server running on
 *                            this machine, spent in the median round (Linux /proc; null elsewhere), and the
 *                            process that plays the clients. Wall times on a shared, loaded machine
 *                            mostly measure the queue for a core; CPU seconds do not.
 *   ingest_cpu_mbps        – ingest's update bytes per CPU-second of the coordinators and nats-server together:
 *                            what the system moves per core, without the clients, which run elsewhere in real use.
 *   ingest_jetstream_floor_mbps – the same bytes through JetStream alone in the same run (nats-floor.ts): two
 *                            processes publish their halves as the blob store does, one reads the other's back.
 *                            No gRPC, signatures, hashing or KV: the ceiling of ingest_mbps on this machine.
 *                            ingest_jetstream_publish_mbps is its publishing alone, with nothing read back.
 *
 *   lethe bench nats --json [--nats nats://127.0.0.1:4222] [--round-clients 1000] [--ingest-mib 16]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata } from '@grpc/grpc-js';
import { readAdminToken } from '../auth/admin-token.js';
import type { Subscription } from '../bus/bus.js';
import { SUBJECTS } from '../bus/events.js';
import { connectNatsBus, type NatsEventBus } from '../bus/nats.js';
import { destroyNatsState } from '../cluster/cluster.js';
import { layoutBytes } from '../coordinator/layout.js';
import { ProcessGroup } from '../demo/processes.js';
import { HEAP_FLOOR_FLAG } from '../memory-tuning.js';
import { hfConfigJson } from '../model/checkpoint.js';
import type { GPT2Config } from '../model/gpt2.js';
import { loadLetheProto } from '../wire/proto.js';
import { callUnary, createClient, type AdminClient } from '../wire/services.js';
import { ALL_TARGETS, answerTasks, SenderProcess, SMALL, uploadShapes, WIDE } from './aggregate.js';
import { BenchClient } from './bench-client.js';
import { measureJetStreamFloor } from './nats-floor.js';

export interface NatsBenchOptions {
  /** 'nats://127.0.0.1:4222': the NATS server(s) with JetStream. */
  readonly servers?: readonly string[];
  /** Bytes of each update in the ingest measurement (≈, set by the LoRA rank). Default 16 MB. */
  readonly ingestBytes?: number;
  /** Concurrent uploaders in the ingest measurement, spread over the two coordinators. Default 4. */
  readonly ingestClients?: number;
  /** Clients in the round-overhead measurement, spread over the two coordinators. Default 1000. */
  readonly roundClients?: number;
  /** Progress lines (setup steps); default none. */
  readonly onProgress?: (line: string) => void;
}

export interface NatsBenchResult {
  /** The median of the run's rounds after the first (steady state, all in ingest_rounds_mbps); ingest_first_round_mbps is the first. */
  readonly ingest_mbps: number;
  readonly ingest_first_round_mbps: number;
  readonly ingest_rounds_mbps: readonly number[];
  readonly ingest_bytes_per_client: number;
  readonly ingest_clients: number;
  /** Seconds from the first byte sent until every upload was acknowledged (stored), and from then to round.aggregated. */
  readonly ingest_upload_s: number;
  readonly ingest_aggregate_s: number;
  readonly ingest_cpu_s_coordinators: number | null;
  readonly ingest_cpu_s_nats_server: number | null;
  /**
   * Update bytes per CPU-second of the coordinators and the local nats-server together (null without /proc): what the
   * system moves per core, whatever the machine's load and wherever its clients run.
   */
  readonly ingest_cpu_mbps: number | null;
  /** The same bytes through JetStream alone, in the same run (nats-floor.ts), and ingest_mbps as a fraction of it. */
  readonly ingest_jetstream_floor_mbps: number;
  readonly ingest_of_floor: number;
  /** Of the floor, the publishing alone: what JetStream takes in here even when nothing is read back. */
  readonly ingest_jetstream_publish_mbps: number;
  /** CPU seconds of the process that plays the uploading clients (gRPC), in the ingest window (null without /proc). */
  readonly ingest_cpu_s_clients: number | null;
  /** The median of the run's rounds between the first and the last (steady state, each in round_overhead_rounds_s); round_overhead_first_round_s is the first. */
  readonly round_overhead_s_1000: number;
  readonly round_overhead_first_round_s: number;
  readonly round_overhead_rounds_s: readonly number[];
  readonly round_clients: number;
  /** Of round_overhead_s_1000, the seconds from the last acknowledged upload to round.aggregated (closing the round). */
  readonly round_aggregate_s: number;
  readonly round_cpu_s_coordinators: number | null;
  readonly round_cpu_s_nats_server: number | null;
  /** CPU seconds of this process, which plays the clients (signing, gRPC), in the round window. */
  readonly round_cpu_s_clients: number | null;
  readonly coordinators: number;
  /** The machine's 1-minute load average at the end, and its CPU count: the numbers depend on both. */
  readonly load_average_1m: number;
  readonly cpus: number;
}

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const COORDINATORS = 2;
/** Rounds measured after each run's first: their median is reported, since one round on a shared machine is noisy. */
const STEADY_ROUNDS = 3;
/** Clients enrolled per join token: each redemption is a compare-and-set on the token's key. */
const CLIENTS_PER_TOKEN = 25;
/** gRPC channels per coordinator shared by the clients (many clients behind a few connections). */
const CHANNELS = 8;

/** The element of `xs` whose `by` is the median (the lower middle for an even count). */
function medianBy<T>(xs: readonly T[], by: (x: T) => number): T {
  const sorted = [...xs].sort((a, b) => by(a) - by(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); null where it cannot be read. */
function cpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    // Fields after the command name (which may hold spaces): state is field 3, utime and stime are fields 14 and 15.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Linux's USER_HZ, the unit of /proc/<pid>/stat times, on every common architecture. */
const CLOCK_TICKS = 100;

/** Pids of nats-server processes on this machine (none when it runs elsewhere or /proc is absent). */
function localNatsServers(): number[] {
  try {
    return readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'nats-server';
        } catch {
          return false;
        }
      })
      .map(Number);
  } catch {
    return [];
  }
}

/** Total CPU seconds of `pids` (null when none can be read). */
function cpuOf(pids: readonly (number | undefined)[]): number | null {
  const times = pids.map(cpuSeconds).filter((t): t is number => t !== null);
  return times.length === 0 ? null : times.reduce((a, b) => a + b, 0);
}

/** CPU seconds (user + system) this process has used so far. */
function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * CPU meter over a window: the seconds that coordinators, local nats-servers and the clients (the process `clients`,
 * or this one) spent since start().
 */
function cpuMeter(coordinators: readonly (number | undefined)[], clients?: number) {
  const nats = localNatsServers();
  const clientCpu = (): number | null => (clients === undefined ? ownCpuSeconds() : cpuSeconds(clients));
  const before = { coordinators: cpuOf(coordinators), nats: cpuOf(nats), clients: clientCpu() };
  return () => {
    const delta = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : b - a);
    return { coordinators: delta(before.coordinators, cpuOf(coordinators)), nats: delta(before.nats, cpuOf(nats)), clients: delta(before.clients, clientCpu()) };
  };
}

/** Two coordinator processes on a fresh prefix, `n` clients enrolled (alternating), live, and the bus to time with. */
async function setUp(servers: readonly string[], model: GPT2Config, n: number, progress: (line: string) => void) {
  const root = await mkdtemp(join(tmpdir(), 'lethe-bench-nats-'));
  const prefix = `lethe_bench_${process.pid}_${Date.now().toString(36)}`;
  const baseModel = join(root, 'base');
  await mkdir(baseModel);
  await writeFile(join(baseModel, 'config.json'), JSON.stringify(hfConfigJson(model)));
  const group = new ProcessGroup({ executable: process.execPath, script: CLI });
  let bus: NatsEventBus | undefined;
  const channels: { close(): void }[] = [];
  /** Stops everything; the data dirs and logs go too unless `keepLogs` (a failed set-up: its error names a log). */
  const tearDown = async (keepLogs = false): Promise<void> => {
    for (const c of channels) c.close();
    await bus?.close();
    await group.stopAll();
    await destroyNatsState(servers, prefix);
    if (!keepLogs) await rm(root, { recursive: true, force: true });
  };
  try {
    const children = Array.from({ length: COORDINATORS }, (_, i) => {
      const args = ['coordinator', 'start', '--data-dir', join(root, `c${i}`), '--port', '0', '--nats', servers.join(','), '--bucket-prefix', prefix];
      return group.spawn(`coordinator-${i}`, args, join(root, `c${i}.log`), [HEAP_FLOOR_FLAG]);
    });
    const addresses = await Promise.all(children.map(async (child) => (await child.waitForLine(/listening on (\S+) /, 60_000))[1]!));
    bus = await connectNatsBus({ servers });
    const proto = loadLetheProto();
    const admin = createClient(proto, 'admin', addresses[0]!, credentials.createInsecure()) as AdminClient;
    channels.push(admin);
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${await readAdminToken(join(root, 'c0'))}`);
    const fleets = addresses.map((a) => Array.from({ length: CHANNELS }, () => createClient(proto, 'fleet', a, credentials.createInsecure())));
    channels.push(...fleets.flat());
    const clients = Array.from({ length: n }, (_, i) => new BenchClient(proto, fleets[i % COORDINATORS]![Math.floor(i / COORDINATORS) % CHANNELS]!));
    progress(`enrolling ${n} clients over ${COORDINATORS} coordinators`);
    for (let i = 0; i < n; i += CLIENTS_PER_TOKEN) {
      const batch = clients.slice(i, i + CLIENTS_PER_TOKEN);
      const { token } = await callUnary(admin, 'CreateJoinToken', { ttlSeconds: 3600, uses: batch.length }, { metadata });
      await Promise.all(batch.map((c, k) => c.enroll(addresses[(i + k) % COORDINATORS]!, token)));
    }
    await Promise.all(clients.map((c) => c.heartbeat()));
    const theBus = bus;
    return {
      clients,
      /** The coordinator each client enrolled with and talks to. */
      addressOf: (k: number) => addresses[k % COORDINATORS]!,
      /** Starts measuring CPU (the clients' in process `clientPid`, else this one); the returned function gives the seconds spent since. */
      cpu: (clientPid?: number) => cpuMeter(children.map((c) => c.process.pid), clientPid),
      /** Resolves with the time (performance.now) of the event of `type` for round `round` (subscribe before it happens). */
      at(type: 'round.started' | 'round.aggregated', round: number): Promise<number> {
        const sub: Subscription = theBus.subscribe(SUBJECTS.ofType(type));
        const time = (async () => {
          for await (const event of sub) {
            if (!('round' in event) || event.round !== round) continue;
            sub.unsubscribe();
            return performance.now();
          }
          throw new Error(`the bus closed before ${type} of round ${round}`);
        })();
        // Awaited by the measurement; one it no longer waits for (it failed) must not end the process before the
        // tear-down has deleted the bench's NATS state.
        time.catch(() => undefined);
        return time;
      },
      createRun: (config: Record<string, unknown>) =>
        callUnary(admin, 'CreateRun', { extraJson: JSON.stringify({ base_model: baseModel, ...config }) }, { metadata }),
      tearDown,
    };
  } catch (err) {
    await tearDown(true).catch(() => undefined);
    throw err;
  }
}

/** Two rounds of one run, as in aggregate.ts measureIngest: the second (steady state) is reported, the first beside it. */
async function measureIngest(servers: readonly string[], bytesPerClient: number, clientCount: number, progress: (line: string) => void) {
  // lora_B floats per layer: (3C + C + 4C + C)·r = 9Cr.
  const r = Math.max(1, Math.round(bytesPerClient / 4 / (9 * WIDE.nEmbd * WIDE.nLayer)));
  const senders = new SenderProcess();
  const env = await setUp(servers, WIDE, clientCount, progress).catch((err: unknown) => {
    senders.kill();
    throw err;
  });
  try {
    const started = env.at('round.started', 1);
    await env.createRun({ name: 'ingest', rounds: 1 + STEADY_ROUNDS, clients_per_round: clientCount, min_clients: clientCount, round_deadline_s: 600, lora: { r, alpha: 2 * r, targets: ALL_TARGETS } });
    await started;
    const round = async (n: number) => {
      const tasks = await Promise.all(env.clients.map((c) => c.pullTask(30_000)));
      const shapes = uploadShapes(tasks[0]!, WIDE, r);
      const bytes = layoutBytes(shapes);
      await senders.prepare(env.clients, tasks, shapes, env.addressOf);
      const aggregated = env.at('round.aggregated', n);
      progress(`round ${n}: uploading ${clientCount} × ${(bytes / 1e6).toFixed(1)} MB`);
      const cpu = env.cpu(senders.pid);
      const start = performance.now();
      await senders.go();
      const acknowledged = performance.now();
      const end = await aggregated;
      return { mbps: (bytes * clientCount) / ((end - start) / 1000) / 1e6, bytes, uploadS: (acknowledged - start) / 1000, foldS: (end - acknowledged) / 1000, cpu: cpu() };
    };
    const rounds = [];
    for (let n = 1; n <= 1 + STEADY_ROUNDS; n++) rounds.push(await round(n));
    const steady = rounds.slice(1);
    return { ...medianBy(steady, (r) => r.mbps), firstRoundMbps: rounds[0]!.mbps, roundsMbps: steady.map((r) => r.mbps) };
  } finally {
    senders.kill();
    await env.tearDown();
  }
}

/**
 * One run of STEADY_ROUNDS + 2 rounds with `clientCount` clients, each client answering every round in turn: as soon
 * as its upload is acknowledged it long-polls for the next round, as an idle client does, so a round's window also
 * holds the clients' requests for the next. A round is timed from round.started to round.aggregated. Reported: the
 * median of the rounds between the first (which also compiles the code paths, in the coordinators and the clients)
 * and the last (which has no next round to poll for, so is lighter than any other).
 */
async function measureRoundOverhead(servers: readonly string[], clientCount: number, progress: (line: string) => void) {
  const env = await setUp(servers, SMALL, clientCount, progress);
  try {
    const count = STEADY_ROUNDS + 2;
    const acknowledged = new Array<number>(count).fill(0);
    const allUploaded: ((time: number) => void)[] = [];
    const events = Array.from({ length: count }, (_, i) => ({
      opened: env.at('round.started', i + 1),
      closed: env.at('round.aggregated', i + 1),
      uploaded: new Promise<number>((resolve) => allUploaded.push(resolve)),
    }));
    let cpu = env.cpu(); // from before the run's creation (round 1), then from the previous round's close: upper bounds
    const rounds: { seconds: number; aggregateS: number; cpu: ReturnType<typeof cpu> }[] = [];
    // Everyone long-polls before the run exists, like idle clients waiting for work.
    const work = answerTasks(env.clients, count, (n) => {
      if (++acknowledged[n - 1]! === clientCount) allUploaded[n - 1]!(performance.now());
    });
    // Rejects as soon as a client fails (its round would never close); never settles otherwise.
    const clientFailure = work.then(() => new Promise<never>(() => undefined));
    clientFailure.catch(() => undefined); // raced below; `await work` reports the failure
    progress(`round 1 of ${count} with ${clientCount} clients`);
    await env.createRun({ name: 'overhead', rounds: count, clients_per_round: clientCount, min_clients: clientCount, round_deadline_s: 600, lora: { r: 8, alpha: 16 } });
    for (const { opened, closed, uploaded } of events) {
      const [t0, t1, tUploaded] = await Promise.race([Promise.all([opened, closed, uploaded]), clientFailure]);
      rounds.push({ seconds: (t1 - t0) / 1000, aggregateS: (t1 - tUploaded) / 1000, cpu: cpu() });
      cpu = env.cpu();
      if (rounds.length < count) progress(`round ${rounds.length + 1} of ${count} with ${clientCount} clients`);
    }
    await work;
    const steady = rounds.slice(1, -1);
    return { ...medianBy(steady, (r) => r.seconds), firstRoundSeconds: rounds[0]!.seconds, roundsSeconds: steady.map((r) => r.seconds) };
  } finally {
    await env.tearDown();
  }
}

export async function benchNats(options: NatsBenchOptions = {}): Promise<NatsBenchResult> {
  const servers = options.servers ?? ['nats://127.0.0.1:4222'];
  const progress = options.onProgress ?? (() => undefined);
  const ingestClients = options.ingestClients ?? 4;
  const ingest = await measureIngest(servers, options.ingestBytes ?? 16e6, ingestClients, progress);
  progress('the same bytes through JetStream alone');
  const floor = await measureJetStreamFloor(servers, ingest.bytes, ingestClients);
  const roundClients = options.roundClients ?? 1000;
  const overhead = await measureRoundOverhead(servers, roundClients, progress);
  return {
    ingest_mbps: ingest.mbps,
    ingest_first_round_mbps: ingest.firstRoundMbps,
    ingest_rounds_mbps: ingest.roundsMbps,
    ingest_bytes_per_client: ingest.bytes,
    ingest_clients: ingestClients,
    ingest_upload_s: ingest.uploadS,
    ingest_aggregate_s: ingest.foldS,
    ingest_cpu_s_coordinators: ingest.cpu.coordinators,
    ingest_cpu_s_nats_server: ingest.cpu.nats,
    ingest_cpu_mbps: ingest.cpu.coordinators === null || ingest.cpu.nats === null ? null : (ingest.bytes * ingestClients) / (ingest.cpu.coordinators + ingest.cpu.nats) / 1e6,
    ingest_cpu_s_clients: ingest.cpu.clients,
    ingest_jetstream_floor_mbps: floor.mbps,
    ingest_of_floor: ingest.mbps / floor.mbps,
    ingest_jetstream_publish_mbps: floor.publishMbps,
    round_overhead_s_1000: overhead.seconds,
    round_overhead_first_round_s: overhead.firstRoundSeconds,
    round_overhead_rounds_s: overhead.roundsSeconds,
    round_clients: roundClients,
    round_aggregate_s: overhead.aggregateS,
    round_cpu_s_coordinators: overhead.cpu.coordinators,
    round_cpu_s_nats_server: overhead.cpu.nats,
    round_cpu_s_clients: overhead.cpu.clients,
    coordinators: COORDINATORS,
    load_average_1m: loadavg()[0]!,
    cpus: cpus().length,
  };
}
