/**
 * `lethe demo`: a federated run on one machine with real processes and real gRPC on 127.0.0.1.
 *
 *   1. the built-in tiny base is pretrained on first use (cached in <data-dir>/models) and copied to the coordinator;
 *   2. the initial adapter's test accuracy is measured here, on the coordinator's eval split;
 *   3. a coordinator process starts; N client identities enroll with one join token; a run is created on the
 *      SpamAssassin task split non-IID (Dirichlet α over the train split, one share per client);
 *   4. N client processes train; each closed round prints a table line (clients in, mean local loss, global test
 *      accuracy, bytes up/down, seconds, ε with --privacy);
 *   5. a summary prints and report.json + report.html are written to the data directory.
 * Every child stops on success, failure, Ctrl-C or SIGTERM (processes.ts).
 */
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { credentials as grpcCredentials, status as Status } from '@grpc/grpc-js';
import { readAdminToken } from '../auth/admin-token.js';
import { enroll } from '../client/enroll.js';
import { DEFAULT_PARTITION_SEED } from '../client/local-data.js';
import { DEFAULT_COORDINATOR_CONFIG } from '../coordinator/config.js';
import { encodeExamples, spamAssassin, trainTestSplit } from '../data/index.js';
import { HEAP_FLOOR_FLAG } from '../memory-tuning.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { GPT2, type GPT2Config } from '../model/gpt2.js';
import { initAdapter, type LoraTarget } from '../model/lora.js';
import { tokenizerFor } from '../model/tokenizer.js';
import type { HostTensor } from '../tensors/host.js';
import { evaluate } from '../train/evaluate.js';
import { baseDir, ensurePretrainedBase, TINY_BASE_NAME, type PretrainProgress } from '../train/pretrain.js';
import type { RoundInfo, Run } from '../wire/admin-messages.js';
import { loadLetheProto } from '../wire/proto.js';
import { RpcError } from '../wire/errors.js';
import { AdminApi } from './admin.js';
import { DEMO_RUN_SEED, demoRunConfig, type DemoOptions, type EvalRunFields } from './config.js';
import { delay, ProcessGroup, type ChildHandle } from './processes.js';
import { renderReportHtml, type DemoReport, type RoundRow } from './report.js';
import { roundRow, summarize, tableHeader, tableLine } from './table.js';

export interface DemoIo {
  /** Where the table and messages go (stdout). */
  readonly out: (text: string) => void;
  /** The `lethe` entry point the child processes run (process.execPath + this script). */
  readonly entry: { readonly executable: string; readonly script: string };
  /** Pretraining progress, when the base is trained in this run. */
  readonly onPretrainStep?: (p: PretrainProgress) => void;
  /** Aborting stops the demo early (Ctrl-C); the report covers the rounds done so far. */
  readonly signal?: AbortSignal;
  /** The backend this process selected, told to enrollment as the clients' capability. */
  readonly backend: string;
  /** An extra act around the run (`--unlearn`: unlearn.ts). */
  readonly stage?: DemoStage;
}

/** What a stage sees once the run completed, while the coordinator and the clients still run. */
export interface StageContext {
  readonly admin: AdminApi;
  readonly address: string;
  readonly runId: string;
  readonly clientDir: (i: number) => string;
  readonly out: (text: string) => void;
  readonly signal?: AbortSignal;
}

export interface DemoStage {
  /** Writes what the clients need under the session directory; returns client i's data flags for `client run`. */
  prepare(sessionRoot: string): Promise<(i: number) => string[]>;
  /** Runs after a completed run, before the processes stop; a throw fails the demo. */
  afterRun(ctx: StageContext): Promise<void>;
}

export interface DemoResult {
  readonly report: DemoReport;
  readonly reportJson: string;
  readonly reportHtml: string;
  readonly run: Run | undefined;
  readonly aborted: boolean;
}

const TERMINAL = new Set(['RUN_STATE_COMPLETED', 'RUN_STATE_FAILED', 'RUN_STATE_BUDGET_EXHAUSTED', 'RUN_STATE_STOPPED']);
const FINISHED = new Set(['ROUND_STATE_COMPLETED', 'ROUND_STATE_FAILED']);
const POLL_MS = 1000;
/** Statuses of an admin call that a busy but live coordinator answers with; the demo asks again. */
const BUSY = new Set<Status>([Status.DEADLINE_EXCEEDED, Status.UNAVAILABLE]);

interface Session {
  readonly root: string;
  readonly coordinator: string;
  readonly logs: string;
  client(i: number): string;
}

/** A fresh session directory (the previous demo's processes, keys and database are removed; the base model stays). */
async function freshSession(dataDir: string): Promise<Session> {
  const root = join(dataDir, 'session');
  await rm(root, { recursive: true, force: true });
  const s: Session = { root, coordinator: join(root, 'coordinator'), logs: join(root, 'logs'), client: (i) => join(root, 'clients', `c${i}`) };
  await mkdir(s.logs, { recursive: true, mode: 0o700 });
  await mkdir(s.coordinator, { recursive: true, mode: 0o700 });
  return s;
}

/**
 * The base model's config and weights: a checkpoint directory, or the built-in tiny base (the one in the data
 * directory, else the one shipped with Lethe; trained here only when neither exists), with the directory it is in.
 */
async function baseModel(o: DemoOptions, io: DemoIo): Promise<{ config: GPT2Config; weights: Map<string, HostTensor>; dir: string }> {
  if (o.baseModel !== 'builtin:tiny') return { ...(await loadCheckpoint(o.baseModel)), dir: o.baseModel };
  let announced = false;
  const onStep = (p: PretrainProgress): void => {
    if (!announced) io.out(`Pretraining the built-in tiny GPT-2 base (first run only; 1-3 minutes on 2 cores) into ${baseDir(o.dataDir)}\n`);
    announced = true;
    io.onPretrainStep?.(p);
  };
  const base = await ensurePretrainedBase(o.dataDir, { onStep });
  if (base.trained) io.out(`Base ready: held-out perplexity ${base.manifest.heldOutPerplexity.toFixed(2)} after ${base.manifest.seconds.toFixed(0)} s\n`);
  return base;
}

/**
 * Accuracy of a run's untrained (round-0) adapter on the coordinator's eval split of the built-in spam task: the same
 * split (test fraction and run seed), cap and seq_len the coordinator evaluates each round's adapter on.
 */
export function untrainedAccuracy(base: { config: GPT2Config; weights: Map<string, HostTensor> }, run: EvalRunFields): number {
  const { test } = trainTestSplit(spamAssassin(), { testFraction: DEFAULT_COORDINATOR_CONFIG.evalTestFraction, seed: run.seed });
  const examples = test.examples.slice(0, DEFAULT_COORDINATOR_CONFIG.evalMaxExamples);
  const data = encodeExamples(examples, tokenizerFor(base.config), Math.min(run.seq_len, base.config.nPositions));
  const lora = { r: run.lora.r, alpha: run.lora.alpha, targets: run.lora.targets as LoraTarget[], numLabels: run.labels.length, seed: run.lora.seed };
  const model = new GPT2(base.config, base.weights);
  try {
    return evaluate(model, lora, initAdapter(base.config, lora), data).accuracy;
  } finally {
    model.dispose();
  }
}

function backendArgs(o: DemoOptions): string[] {
  return o.backend ? ['--backend', o.backend] : [];
}

/** Runs the demo (see the module comment). Children are stopped before it returns or throws. */
export async function runDemo(o: DemoOptions, io: DemoIo): Promise<DemoResult> {
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const session = await freshSession(o.dataDir);
  const base = await baseModel(o, io);
  // The coordinator evaluates on exactly this base (its own data directory is fresh).
  if (o.baseModel === 'builtin:tiny') await cp(base.dir, join(session.coordinator, 'models', TINY_BASE_NAME), { recursive: true });

  const group = new ProcessGroup(io.entry);
  const killOnExit = (): void => group.killAllNow();
  process.once('exit', killOnExit);
  let admin: AdminApi | undefined;
  const rows: RoundRow[] = [];
  let run: Run | undefined;
  let initial = Number.NaN;
  try {
    const coordinator = group.spawn(
      'coordinator',
      ['coordinator', 'start', '--port', String(o.port), '--host', '127.0.0.1', '--data-dir', session.coordinator, ...backendArgs(o)],
      join(session.logs, 'coordinator.log'),
      [HEAP_FLOOR_FLAG],
    );
    const m = await coordinator.waitForLine(/listening on ([\w.-]+:\d+)/, 60_000);
    const address = m[1]!;
    admin = new AdminApi(address, await readAdminToken(session.coordinator));
    io.out(`Coordinator listening on ${address} (log: ${coordinator.logPath})\n`);

    const dataArgs = await io.stage?.prepare(session.root);
    const token = await admin.createJoinToken(o.clients, 3600, 'lethe demo');
    const proto = loadLetheProto();
    for (let i = 0; i < o.clients; i++) {
      await enroll({
        proto,
        address,
        credentials: grpcCredentials.createInsecure(),
        joinToken: token.token,
        name: `demo-client-${i}`,
        dataDir: session.client(i),
        memoryMb: 1024,
        modes: ['TRAINING_MODE_BACKPROP'],
        backend: io.backend,
      });
    }
    run = await admin.createRun(demoRunConfig(o));
    io.out(`Run ${run.runId}: ${o.rounds} rounds, ${o.clients} clients, SpamAssassin split non-IID (Dirichlet α=${o.alpha})${o.privacy ? ', central DP' : ''}\n`);

    const clients: ChildHandle[] = [];
    for (let i = 0; i < o.clients; i++) {
      clients.push(
        group.spawn(
          `client ${i}`,
          [
            'client', 'run', '--data-dir', session.client(i),
            ...(dataArgs?.(i) ?? ['--data', 'builtin:spam', '--partition', `${i}/${o.clients}`, '--alpha', String(o.alpha), '--partition-seed', DEFAULT_PARTITION_SEED, '--split-seed', DEMO_RUN_SEED]),
            '--model-cache', o.dataDir, ...backendArgs(o),
          ],
          join(session.logs, `client-${i}.log`),
        ),
      );
    }
    io.out(`Started ${o.clients} client processes (logs in ${session.logs})\n`);
    // Measured while the clients start up (they are separate processes; this blocks only the demo's own loop).
    initial = untrainedAccuracy(base, demoRunConfig(o));
    io.out(`Initial test accuracy (untrained adapter): ${(100 * initial).toFixed(1)}%\n\n${tableHeader(o.privacy)}\n`);
    run = await follow(admin, run.runId, o, io, rows, coordinator, clients);
    if (io.stage && run.state === 'RUN_STATE_COMPLETED' && !io.signal?.aborted) {
      await io.stage.afterRun({ admin, address, runId: run.runId, clientDir: session.client, out: io.out, ...(io.signal ? { signal: io.signal } : {}) });
    }
  } finally {
    admin?.close();
    await group.stopAll();
    process.off('exit', killOnExit);
  }

  const seconds = (Date.now() - started) / 1000;
  const report: DemoReport = {
    title: `Lethe demo: federated LoRA on SpamAssassin, ${o.clients} clients, Dirichlet α=${o.alpha}${o.privacy ? ', central DP' : ''}`,
    startedAt,
    config: { demo: { ...o, dataDir: undefined }, run: demoRunConfig(o), run_id: run?.runId ?? null, run_state: run?.state ?? null },
    initialAccuracy: initial,
    rounds: rows,
    summary: summarize(initial, rows, seconds),
  };
  const reportJson = join(o.dataDir, 'report.json');
  const reportHtml = join(o.dataDir, 'report.html');
  await writeFile(reportJson, `${JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  await writeFile(reportHtml, renderReportHtml(report));
  io.out(`\n${Object.entries(report.summary).map(([k, v]) => `${k.padEnd(20)} ${v}`).join('\n')}\n\nReport: ${reportHtml}\n        ${reportJson}\n`);
  return { report, reportJson, reportHtml, run, aborted: io.signal?.aborted ?? false };
}

/** Prints each round as it finishes until the run ends, the coordinator dies, or the demo is aborted. */
async function follow(admin: AdminApi, runId: string, o: DemoOptions, io: DemoIo, rows: RoundRow[], coordinator: ChildHandle, clients: readonly ChildHandle[]): Promise<Run> {
  const printed = new Set<number>();
  const gone = new Set<ChildHandle>();
  const coordinatorGone = async (): Promise<void> => {
    if (coordinator.process.exitCode !== null || coordinator.process.signalCode !== null) {
      throw new Error(`the coordinator process exited (${await coordinator.exited}); see ${coordinator.logPath}`);
    }
  };
  // An admin call that fails because the coordinator died should say so, not "connection dropped". A live coordinator
  // that misses the call's deadline is busy (it evaluates each round's adapter on the test split, which on a loaded
  // 2-core machine can hold its event loop for longer than one call may wait): ask again, within the round deadline.
  const ask = async <T>(call: () => Promise<T>): Promise<T> => {
    const giveUp = Date.now() + o.roundDeadlineS * 1000;
    for (;;) {
      try {
        return await call();
      } catch (err) {
        await delay(200);
        await coordinatorGone();
        if (!(err instanceof RpcError && BUSY.has(err.status)) || Date.now() > giveUp) throw err;
      }
    }
  };
  let run = await ask(() => admin.getRun(runId));
  for (;;) {
    await coordinatorGone();
    for (const c of clients) {
      if (!gone.has(c) && (c.process.exitCode !== null || c.process.signalCode !== null)) {
        gone.add(c);
        io.out(`  (${c.name} exited with ${await c.exited}; see ${c.logPath})\n`);
      }
    }
    const rounds: RoundInfo[] = await ask(() => admin.rounds(runId));
    for (const r of rounds) {
      if (printed.has(r.round) || !FINISHED.has(r.state)) continue;
      // A completed round gets its accuracy a moment after it closes (evaluation follows aggregation).
      if (r.state === 'ROUND_STATE_COMPLETED' && r.metrics.eval_accuracy === undefined && !TERMINAL.has(run.state)) continue;
      printed.add(r.round);
      const row = roundRow(r, o.privacy);
      rows.push(row);
      io.out(`${tableLine(row, o.privacy)}\n`);
    }
    if (TERMINAL.has(run.state) && rounds.every((r) => printed.has(r.round) || !FINISHED.has(r.state))) {
      if (run.state !== 'RUN_STATE_COMPLETED') io.out(`Run ended: ${run.state}${run.message ? ` (${run.message})` : ''}\n`);
      return run;
    }
    if (io.signal?.aborted) {
      io.out('Stopped by the user.\n');
      return run;
    }
    if (gone.size === clients.length) throw new Error('every client process exited; see their logs');
    await delay(POLL_MS, io.signal);
    run = await ask(() => admin.getRun(runId));
  }
}
