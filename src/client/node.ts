/**
 * A client node: the long-running process on a device that holds data. Its loop, until closed:
 *
 *   PullTask (long poll) → FetchAdapter (cached by SHA-256) → train locally with the core trainer of the task's mode
 *   → privatise as instructed → PushUpdate (retried with backoff; the coordinator recognises a retry as a duplicate)
 *
 * with heartbeats on their own timer throughout, so the coordinator keeps the client online during a long local step
 * and can cancel a task whose round closed. Every call is signed (connection.ts).
 *
 * Failures: anything that may pass (coordinator down, restarting, overloaded) is retried with exponential backoff and
 * jitter capped at 5 s, forever; the node never crashes on UNAVAILABLE. A refusal it cannot fix (revoked, unknown
 * client) ends the node: `closed()` resolves with a ClientRefusedError saying what to do.
 *
 * Lifecycle (after nats.js): `close()` stops at once and drops the task in hand; `drain()` finishes (and uploads)
 * the task in hand, then closes; `closed()` resolves with the error that ended the node, if any; `status()` is an
 * async iterable of ClientEvent; `await using node = await ClientNode.start(...)` closes it.
 */
import { join } from 'node:path';
import { initBackend } from '../backend/backend.js';
import { installWasmTransposedMatMul } from '../backend/wasm-matmul.js';
import { EventChannel } from '../lifecycle/event-channel.js';
import { tokenizerFor } from '../model/tokenizer.js';
import type { TensorMap } from '../tensors/host.js';
import { TrainError } from '../train/errors.js';
import { encodeTensors, hexDigest, MAX_CHUNK_BYTES } from '../wire/codec.js';
import { RpcError } from '../wire/errors.js';
import type { ClientState, FailureReason, Task } from '../wire/messages.js';
import { loadLetheProto, type LetheProto } from '../wire/proto.js';
import { Backoff } from './backoff.js';
import type { ClientNodeConfig } from './config.js';
import { classifyFailure, FleetConnection } from './connection.js';
import { buildCapabilities } from './enroll.js';
import { ClientClosedError, ClientDrainingError, ClientRefusedError, TaskError } from './errors.js';
import type { ClientEvent } from './events.js';
import { loadIdentity, type ClientIdentity } from './identity.js';
import { LocalData, loadLocalData } from './local-data.js';
import { BaseModels } from './models.js';
import { computeUnlearning } from './unlearn-task.js';
import { ClientPrivacyAccount, PrivacyBudgetError } from './privacy.js';
import { computeUpdate, type TaskOutput } from './train-task.js';
import { channelCredentials } from '../wire/tls.js';

/** How the node reads its refusals: what happened and what the operator of this device should do. */
const REFUSAL_ADVICE: Readonly<Record<string, string>> = Object.freeze({
  revoked_client: 'this client was revoked by the coordinator operator; enroll again with a new join token into a new --data-dir',
  unknown_client: 'the coordinator does not know this client id (a different coordinator or a wiped database); enroll again with a new join token',
  bad_signature: "the coordinator does not accept this client's key; enroll again with a new join token",
});

type NodeState = 'running' | 'draining' | 'closed';

interface CurrentTask {
  readonly task: Task;
  state: ClientState;
  progress: number;
  cancelled: boolean;
}

/** Payloads downloaded (adapters, an ESSA basis), by hex SHA-256: a round's task and its retries need one download. */
const ADAPTER_CACHE_SIZE = 3;
const MAX_FETCH_BYTES = 256 << 20;
/** The client's sample-level DP account, in its data directory. */
const PRIVACY_ACCOUNT_FILE = 'privacy-account.json';

export class ClientNode {
  private state: NodeState = 'running';
  private readonly events = new EventChannel<ClientEvent>();
  private readonly backoff: Backoff;
  private readonly adapters = new Map<string, TensorMap>();
  /** The last global adapter fetched of each run: it holds the tensors the run keeps frozen (fetchPayload). */
  private readonly runAdapters = new Map<string, TensorMap>();
  private current: CurrentTask | undefined;
  private online = false;
  private announced = false;
  private heartbeatMs: number;
  /** Wakes every sleep (close, drain, fatal refusal). */
  private readonly sleepers = new Set<() => void>();
  private pullAbort: AbortController | undefined;
  private resolveClosed!: (err: Error | undefined) => void;
  private readonly closedPromise = new Promise<Error | undefined>((resolve) => (this.resolveClosed = resolve));
  private loopDone: Promise<void> = Promise.resolve();
  /** The task loop has exited (heartbeats stop with it). */
  private loopEnded = false;
  /** The client's own sample-level DP account, opened on the first DP task. */
  private privacy: Promise<ClientPrivacyAccount> | undefined;

  private constructor(
    private readonly config: ClientNodeConfig,
    readonly identity: ClientIdentity,
    readonly address: string,
    private readonly conn: FleetConnection,
    private readonly data: LocalData,
    private readonly models: BaseModels,
    readonly backend: string,
  ) {
    this.backoff = new Backoff(config.random, config.backoff);
    this.heartbeatMs = config.heartbeatIntervalMs;
  }

  /** Loads the identity and the local data, picks the backend, and starts the loop. */
  static async start(config: ClientNodeConfig, proto: LetheProto = loadLetheProto()): Promise<ClientNode> {
    const identity = await loadIdentity(config.dataDir);
    const choice = await initBackend(config.backend);
    installWasmTransposedMatMul();
    const dataset = await loadLocalData(config.data);
    const data = new LocalData(dataset);
    const address = config.coordinator ?? identity.record.coordinator;
    const credentials =
      config.credentials ??
      channelCredentials(identity.record.tls);
    const conn = new FleetConnection({ proto, address, credentials, clientId: identity.record.clientId, privateKey: identity.privateKey, clock: config.clock });
    const models = new BaseModels(config.modelCacheDir ?? config.dataDir, config.log);
    const node = new ClientNode(config, identity, address, conn, data, models, choice.backend);
    config.log(
      `client ${identity.record.clientId} (${identity.record.name}) → ${address}; backend ${choice.backend}; ` +
        `${data.size} local examples ${JSON.stringify(data.labelCounts())}`,
    );
    node.loopDone = node.run();
    return node;
  }

  get clientId(): string {
    return this.identity.record.clientId;
  }

  /** Events until the node closes (see ClientEvent). */
  status(): AsyncIterableIterator<ClientEvent> {
    return this.events.subscribe();
  }

  /** Resolves when the node has stopped: with the error that stopped it, or undefined after close/drain. */
  closed(): Promise<Error | undefined> {
    return this.closedPromise;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Finishes (and uploads) the task in hand, takes no new one, then closes. */
  async drain(): Promise<void> {
    if (this.state === 'closed') throw new ClientClosedError('drain');
    if (this.state === 'draining') throw new ClientDrainingError('drain again');
    this.state = 'draining';
    this.events.emit({ type: 'draining' });
    this.pullAbort?.abort();
    this.wakeAll();
    await this.loopDone;
    await this.finish(undefined);
  }

  /** Stops now: the task in hand is dropped (not uploaded). Idempotent. */
  async close(): Promise<void> {
    await this.finish(undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async finish(error: Error | undefined): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.current) this.current.cancelled = true;
    this.pullAbort?.abort();
    this.wakeAll();
    this.conn.close();
    this.models.dispose();
    if (error) this.config.log(`client stopped: ${error.message}`);
    this.events.emit(error ? { type: 'closed', error } : { type: 'closed' });
    this.events.end();
    this.resolveClosed(error);
  }

  // ---- waiting ---------------------------------------------------------------------------------------------------

  private sleep(ms: number): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.sleepers.add(done);
    });
  }

  private wakeAll(): void {
    for (const wake of [...this.sleepers]) wake();
  }

  // ---- the loop --------------------------------------------------------------------------------------------------

  private async run(): Promise<void> {
    const heartbeats = this.heartbeatLoop();
    while (this.state === 'running') {
      try {
        if (!this.announced) await this.announce();
        this.pullAbort = new AbortController();
        const res = await this.conn.pullTask(this.config.pullWaitMs, this.pullAbort.signal);
        this.contact();
        if (res.task) await this.handleTask(res.task);
        else await this.sleep(res.retryAfterMs > 0 ? res.retryAfterMs : 1000);
      } catch (err) {
        if (this.state !== 'running') break;
        await this.failed(err);
      }
    }
    this.loopEnded = true;
    this.wakeAll();
    await heartbeats;
  }

  /**
   * Tells the coordinator what this client can run now (the backend it selected, its data size), once per process.
   * Unreachable: throws, and the loop backs off. Refused otherwise: the enrolled capabilities stay, and it says so.
   */
  private async announce(): Promise<void> {
    const { record } = this.identity;
    const caps = buildCapabilities({ backend: this.backend, memoryMb: record.memoryMb, modes: record.modes, numExamples: this.data.size });
    try {
      await this.conn.updateCapabilities(caps);
      this.contact();
    } catch (err) {
      if (classifyFailure(err) !== 'give_up') throw err;
      this.config.log(`could not update capabilities (continuing with the enrolled ones): ${(err as Error).message}`);
    }
    this.announced = true;
  }

  /** A call succeeded: the coordinator is reachable. */
  private contact(): void {
    this.backoff.reset();
    if (!this.online) {
      this.online = true;
      this.config.log(`connected to ${this.address}`);
      this.events.emit({ type: 'connected', address: this.address });
    }
  }

  /** Handles a failed call: stops the node on a fatal refusal, else waits out a backoff delay. */
  private async failed(err: unknown): Promise<void> {
    const error = err instanceof Error ? err : new Error(String(err));
    const kind = classifyFailure(err);
    if (kind === 'fatal') {
      const code = err instanceof RpcError ? err.code : 'refused';
      const advice = REFUSAL_ADVICE[code] ?? 'the coordinator refuses this client; enroll again with a new join token';
      await this.finish(new ClientRefusedError(`coordinator ${this.address} refused client ${this.clientId} (${code}): ${advice}`, code, { cause: err }));
      return;
    }
    const delay = this.backoff.next();
    if (kind === 'transient') {
      if (this.online || this.backoff.failures === 1) {
        this.config.log(`coordinator unreachable (${error.message}); retrying in ${delay} ms`);
      }
      this.online = false;
      this.events.emit({ type: 'disconnected', error, retryInMs: delay, failures: this.backoff.failures });
    } else {
      this.config.log(`request refused (${error.message}); retrying in ${delay} ms`);
      this.events.emit({ type: 'error', error });
    }
    await this.sleep(delay);
  }

  /**
   * Runs `fn` until it succeeds, retrying transient failures with backoff while the task's deadline allows. A fatal
   * or give-up failure, or the node closing, rethrows.
   */
  private async retrying<T>(task: Task, fn: () => Promise<T>): Promise<{ value: T; attempts: number }> {
    for (let attempts = 1; ; attempts++) {
      try {
        const value = await fn();
        this.contact();
        return { value, attempts };
      } catch (err) {
        if (this.state === 'closed') throw new ClientClosedError(`finish task ${task.taskId}`);
        if (classifyFailure(err) !== 'transient' || this.conn.serverNow() >= task.deadlineMs) throw err;
        await this.failed(err);
      }
    }
  }

  private async heartbeatLoop(): Promise<void> {
    while (this.state !== 'closed' && !this.loopEnded) {
      const current = this.current;
      try {
        const res = await this.conn.heartbeat({
          state: current?.state ?? 'CLIENT_STATE_IDLE',
          taskId: current?.task.taskId ?? '',
          progress: current?.progress ?? 0,
          freeMemoryBytes: 0,
        });
        if (res.heartbeatIntervalMs > 0) this.heartbeatMs = res.heartbeatIntervalMs;
        if (res.cancelTask && current && this.current === current && !current.cancelled) {
          current.cancelled = true;
          this.config.log(`coordinator cancelled task ${current.task.taskId}`);
        }
      } catch (err) {
        // Reconnection is the main loop's business; only a final refusal matters here.
        if (classifyFailure(err) === 'fatal') await this.failed(err);
      }
      await this.sleep(this.heartbeatMs);
    }
  }

  // ---- one task --------------------------------------------------------------------------------------------------

  private async handleTask(task: Task): Promise<void> {
    const current: CurrentTask = { task, state: 'CLIENT_STATE_FETCHING', progress: 0, cancelled: false };
    this.current = current;
    this.events.emit({ type: 'task', taskId: task.taskId, runId: task.runId, round: task.round, mode: task.mode });
    this.config.log(`task ${task.taskId}: ${task.mode}, ${task.training?.steps ?? 0} steps`);
    try {
      if (task.mode === 'TRAINING_MODE_UNLEARN') return await this.unlearn(task, current);
      const global = await this.fetchPayload(task, task.adapterSha256, true);
      const essaBasis = task.essa && task.essa.basisSha256.length > 0 ? await this.fetchPayload(task, task.essa.basisSha256) : undefined;
      const model = await this.models.get(task.baseModel);
      const data = this.data.encoded(task.labels, tokenizerFor(model.config), Math.min(task.seqLen, model.config.nPositions));
      await this.chargePrivacy(task);
      current.state = 'CLIENT_STATE_TRAINING';
      const output = await computeUpdate(task, { model, global, data, noise: this.config.noise, onProgress: (p) => (current.progress = p), ...(essaBasis ? { essaBasis } : {}) });
      this.events.emit({ type: 'trained', taskId: task.taskId, metrics: output.metrics });
      if (current.cancelled) return this.dropped(task, 'FAILURE_REASON_CANCELLED', 'cancelled while training');
      if (this.conn.serverNow() > task.deadlineMs) return this.dropped(task, 'FAILURE_REASON_DEADLINE', 'training ended after the round deadline');
      current.state = 'CLIENT_STATE_UPLOADING';
      await this.upload(task, output);
    } catch (err) {
      await this.taskFailed(task, err);
    } finally {
      this.current = undefined;
    }
  }

  /** An unlearning task (unlearn-task.ts): fetch the global and earlier unlearning adapters, run O3, upload the package. */
  private async unlearn(task: Task, current: CurrentTask): Promise<void> {
    const global = await this.fetchPayload(task, task.adapterSha256, true);
    const priors: TensorMap[] = [];
    for (const sha of task.unlearning?.priorAdaptersSha256 ?? []) priors.push(await this.fetchPayload(task, sha));
    const model = await this.models.get(task.baseModel);
    const data = this.data.encoded(task.labels, tokenizerFor(model.config), Math.min(task.seqLen, model.config.nPositions));
    current.state = 'CLIENT_STATE_TRAINING';
    const output = await computeUnlearning(task, { model, global, priors, dataset: this.data.dataset, data, disclosure: this.config.detectorDisclosure });
    this.events.emit({ type: 'trained', taskId: task.taskId, metrics: output.metrics });
    if (current.cancelled) return this.dropped(task, 'FAILURE_REASON_CANCELLED', 'cancelled while unlearning');
    current.state = 'CLIENT_STATE_UPLOADING';
    const encoded = encodeTensors(output.tensors, { chunkBytes: MAX_CHUNK_BYTES });
    const header = { runId: task.runId, round: 0, taskId: task.taskId, kind: 'UPDATE_KIND_UNLEARNING' as const, numExamples: output.numExamples, metrics: output.metrics, withinClipNorm: false, unlearningMetadata: output.metadata };
    const { value, attempts } = await this.retrying(task, () => this.conn.pushUpdate(header, encoded, 60_000));
    this.config.log(`task ${task.taskId}: unlearning package uploaded, ${encoded.manifest.totalBytes} bytes (${value.result})`);
    this.events.emit({ type: 'uploaded', taskId: task.taskId, result: value.result, bytes: encoded.manifest.totalBytes, attempts });
  }

  /** Records the task's sample-level DP releases in this client's own account, or refuses the task (privacy.ts). */
  private async chargePrivacy(task: Task): Promise<void> {
    const dp = task.privacy?.sampleDp;
    const budget = this.config.privacyBudget;
    if (!dp || !budget) return;
    this.privacy ??= ClientPrivacyAccount.open(join(this.config.dataDir, PRIVACY_ACCOUNT_FILE), budget);
    const epsilon = await (await this.privacy).charge(task.taskId, { q: dp.samplingRate, sigma: dp.noiseMultiplier, steps: task.training?.steps ?? 0 });
    this.config.log(`task ${task.taskId}: this client's ε after it: ${epsilon.toFixed(4)} of ${budget.epsilon}`);
  }

  /**
   * A payload the task names (its adapter, an ESSA basis), cached by SHA-256. The run's global adapter (`adapter`) is
   * fetched without the tensors the run keeps frozen when this client holds an earlier one of the run.
   */
  private async fetchPayload(task: Task, sha256: Buffer, adapter = false): Promise<TensorMap> {
    const sha = hexDigest(sha256);
    const hit = this.adapters.get(sha);
    if (hit) return hit;
    const held = adapter ? this.runAdapters.get(task.runId) : undefined;
    const { value } = await this.retrying(task, () => this.conn.fetchAdapter(task.runId, sha256, { maxTotalBytes: MAX_FETCH_BYTES }, 60_000, held));
    remember(this.adapters, sha, value.tensors);
    if (adapter) remember(this.runAdapters, task.runId, value.tensors);
    return value.tensors;
  }

  private async upload(task: Task, output: TaskOutput): Promise<void> {
    const encoded = encodeTensors(output.tensors, { chunkBytes: MAX_CHUNK_BYTES });
    const header = {
      runId: task.runId,
      round: task.round,
      taskId: task.taskId,
      kind: output.kind,
      numExamples: output.numExamples,
      metrics: output.metrics,
      withinClipNorm: output.withinClipNorm,
    };
    const { value, attempts } = await this.retrying(task, () => this.conn.pushUpdate(header, encoded, 60_000));
    this.config.log(`task ${task.taskId}: uploaded ${encoded.manifest.totalBytes} bytes (${value.result}, ${attempts} attempt${attempts > 1 ? 's' : ''})`);
    this.events.emit({ type: 'uploaded', taskId: task.taskId, result: value.result, bytes: encoded.manifest.totalBytes, attempts });
  }

  private dropped(task: Task, reason: FailureReason | 'ROUND_CLOSED', message: string): void {
    this.config.log(`task ${task.taskId} dropped: ${message}`);
    this.events.emit({ type: 'task_dropped', taskId: task.taskId, reason, message });
  }

  /** A task that cannot be completed: say why (best effort) unless the coordinator already moved on. */
  private async taskFailed(task: Task, err: unknown): Promise<void> {
    if (this.state === 'closed') return;
    const error = err instanceof Error ? err : new Error(String(err));
    if (err instanceof RpcError) {
      const kind = classifyFailure(err);
      if (kind === 'fatal') return this.failed(err);
      // Round closed, not sampled any more, deadline passed: the coordinator already knows.
      this.dropped(task, kind === 'transient' ? 'FAILURE_REASON_DEADLINE' : 'ROUND_CLOSED', error.message);
      return;
    }
    const reason = failureReason(err);
    this.dropped(task, reason, error.message);
    try {
      await this.conn.reportFailure({ runId: task.runId, round: task.round, taskId: task.taskId, reason, message: error.message.slice(0, 500) });
    } catch (reportErr) {
      if (classifyFailure(reportErr) === 'fatal') await this.failed(reportErr);
    }
  }
}

/** Sets `key` as the newest entry of a cache of ADAPTER_CACHE_SIZE entries, dropping the oldest beyond that. */
function remember(cache: Map<string, TensorMap>, key: string, value: TensorMap): void {
  cache.delete(key);
  cache.set(key, value);
  if (cache.size > ADAPTER_CACHE_SIZE) cache.delete(cache.keys().next().value!);
}

/** The ReportFailure reason for a local error. */
export function failureReason(err: unknown): FailureReason {
  if (err instanceof TrainError && err.code === 'diverged') return 'FAILURE_REASON_NON_FINITE';
  if (err instanceof TaskError && err.code === 'data') return 'FAILURE_REASON_DATA';
  if (err instanceof PrivacyBudgetError) return 'FAILURE_REASON_CANCELLED';
  if ((err as { code?: unknown }).code === 'non_finite') return 'FAILURE_REASON_NON_FINITE';
  if (err instanceof RangeError && /memory/i.test(err.message)) return 'FAILURE_REASON_OUT_OF_MEMORY';
  return 'FAILURE_REASON_INTERNAL';
}
