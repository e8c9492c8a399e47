/**
 * Unlearning requests as client tasks (task.proto UnlearningTask; ALGORITHMS.md §6). A queued request naming a client
 * is handed to it before any training round (PullTask/Heartbeat go through findTask, which asks here first). The
 * task id is "<run>/0/<client>" (round 0: no training round has that number). Assignment is a compare-and-set
 * queued → assigned, so one request is processed once; an assignment older than its deadline (the run's round
 * deadline, scaled by the task's extra steps) goes back to queued when the client next asks, so a client that crashed mid-way starts it again.
 * The upload (UPDATE_KIND_UNLEARNING: the package's tensors plus its JSON header in UpdateHeader.unlearning_metadata)
 * moves the request assigned → training → verifying, then unlearning.ts verifies and activates it.
 */
import { encodeSafetensors } from '../tensors/safetensors.js';
import type { TensorMap } from '../tensors/host.js';
import type { UnlearningRequestRecord } from '../store/store.js';
import { DEFAULT_DETECTOR, DEFAULT_UNLEARNING_ADAPTER } from '../unlearning/index.js';
import { TensorAssembler, type WireChunk } from '../wire/codec.js';
import { ProtocolError } from '../wire/errors.js';
import type { ClientRecord } from '../store/store.js';
import type { MessageInput, PushUpdateRequest, PushUpdateResponse, Task, UpdateHeader } from '../wire/messages.js';
import type { CoordinatorCore } from './core.js';
import { InvalidRequestError, RoundClosedError } from './errors.js';
import { requireWellFormed } from './handlers.js';
import type { RunRegistry } from './runs.js';
import { activePackages, verifyAndActivate } from './unlearning.js';
import { storedSelector, wireSelector } from './unlearning-admin.js';

/** The package header's safetensors metadata key (unlearning/package.ts). */
const PACKAGE_METADATA_KEY = 'lethe.unlearning';

export function unlearningTaskId(runId: string, clientId: string): string {
  return `${runId}/0/${clientId}`;
}

/**
 * The run's round deadline, scaled by how many more optimisation steps an unlearning task runs than a round's local
 * training (150 against the demo's 15): a task held to one round's deadline on a busy machine was requeued before it
 * could finish, again and again.
 */
async function deadlineOf(runs: RunRegistry, record: UnlearningRequestRecord): Promise<number> {
  const { config } = await runs.context(record.runId);
  const factor = Math.max(1, Math.ceil(DEFAULT_UNLEARNING_ADAPTER.steps / config.local.steps));
  return record.updatedAt + factor * config.roundDeadlineS * 1000;
}

/**
 * The request `client` is working on or should start, oldest first; expired assignments are requeued on the way.
 * With `assign`, a queued one is assigned to it (compare-and-set); without, it is returned still queued.
 */
export async function currentUnlearning(core: CoordinatorCore, runs: RunRegistry, clientId: string, assign: boolean): Promise<UnlearningRequestRecord | undefined> {
  const open = await core.store.unlearning.list({ clientId, states: ['queued', 'assigned', 'training'] });
  const now = core.config.clock();
  for (const r of open) {
    let record = r;
    if (record.state !== 'queued' && now > (await deadlineOf(runs, record))) {
      if (await core.store.unlearning.transition(record.id, record.state, 'queued')) core.config.log(`unlearning ${record.id}: task deadline passed, queued again`);
      record = (await core.store.unlearning.get(record.id))!;
    }
    if (record.state === 'assigned') return record;
    if (record.state === 'queued' && !assign) return record;
    if (record.state === 'queued') {
      if (await core.store.unlearning.transition(record.id, 'queued', 'assigned')) {
        core.config.log(`unlearning ${record.id} assigned to client ${clientId}`);
        return (await core.store.unlearning.get(record.id))!;
      }
    }
  }
  return undefined;
}

/**
 * Clients the run must not sample: those with one of its unlearning requests pending (that task comes first), and
 * those whose active request forgot all their local data (the package's forget_fraction metric is 1).
 */
export async function unlearningExcluded(core: CoordinatorCore, runId: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const r of await core.store.unlearning.list({ runId, states: ['queued', 'assigned', 'training', 'verifying', 'active'] })) {
    if (r.state !== 'active' || r.metrics['forget_fraction'] === 1) for (const id of r.clientIds) out.add(id);
  }
  return out;
}

/** The UnlearningTask for `record` (assigned to `client`). */
export async function buildUnlearningTask(core: CoordinatorCore, runs: RunRegistry, record: UnlearningRequestRecord, client: ClientRecord): Promise<Task> {
  const ctx = await runs.context(record.runId);
  const run = (await core.store.runs.get(record.runId))!;
  const priors = (await activePackages(core, record.runId, ctx.layout.model, record.index)).map((p) => Buffer.from(p.record.resultAdapterSha!, 'hex'));
  const selector = storedSelector(record);
  const { config } = ctx;
  const adapter = DEFAULT_UNLEARNING_ADAPTER;
  return {
    taskId: unlearningTaskId(record.runId, client.id),
    runId: record.runId,
    round: 0,
    deadlineMs: await deadlineOf(runs, record),
    mode: 'TRAINING_MODE_UNLEARN',
    adapterSha256: Buffer.from(run.globalAdapterSha ?? '', 'hex'),
    baseModel: config.baseModel,
    dataset: config.task,
    labels: [...config.labels],
    seqLen: config.seqLen,
    lora: { rank: config.lora.r, alpha: config.lora.alpha, targetModules: [...config.lora.targets], initSeed: config.lora.seed, aggregation: 'AGGREGATION_MODE_UNSPECIFIED' },
    training: { steps: adapter.steps, batchSize: adapter.batchSize, learningRate: adapter.lr, weightDecay: 0, seed: record.index },
    mezo: null,
    essa: null,
    privacy: null,
    unlearning: {
      requestId: record.id,
      index: record.index,
      previousAdapterSha256: Buffer.alloc(0),
      priorAdaptersSha256: priors,
      orthogonalityLambda: adapter.lambda,
      forget: wireSelector(selector),
      targetPolicy: selector.targetPolicy,
      detectorLayers: DEFAULT_DETECTOR.layers === 'all' ? [] : [...DEFAULT_DETECTOR.layers],
    },
    uploadTensors: [],
  };
}

/** The payloads an unlearning task names that `client` may fetch: the run's global adapter, earlier requests' adapters. */
export async function unlearningPayload(core: CoordinatorCore, runs: RunRegistry, client: ClientRecord, runId: string, sha: string): Promise<'global' | TensorMap | undefined> {
  const record = (await core.store.unlearning.list({ runId, clientId: client.id, states: ['assigned', 'training'] }))[0];
  if (!record) return undefined;
  const run = (await core.store.runs.get(runId))!;
  if (sha === run.globalAdapterSha) return 'global';
  const ctx = await runs.context(runId);
  return (await activePackages(core, runId, ctx.layout.model, record.index)).find((p) => p.record.resultAdapterSha === sha)?.pkg.adapter;
}

/** ReportFailure for an unlearning task: the request fails with the client's reason (e.g. an empty selection). */
export async function unlearningFailed(core: CoordinatorCore, client: ClientRecord, runId: string, reason: string): Promise<void> {
  const record = (await core.store.unlearning.list({ runId, clientId: client.id, states: ['assigned', 'training'] }))[0];
  if (!record) throw new RoundClosedError(`client ${client.id} holds no unlearning task of run ${runId}`);
  await core.store.unlearning.transition(record.id, record.state, 'failed', { failureReason: reason.slice(0, 512) });
  core.config.log(`unlearning ${record.id} failed on client ${client.id}: ${reason}`);
}

/** PushUpdate with UPDATE_KIND_UNLEARNING (after ingest.ts verified the signature and decoded the header). */
export async function ingestUnlearning(
  core: CoordinatorCore,
  runs: RunRegistry,
  client: ClientRecord,
  header: UpdateHeader,
  first: PushUpdateRequest,
  rest: AsyncIterator<PushUpdateRequest>,
): Promise<MessageInput<PushUpdateResponse>> {
  const manifest = header.manifest!;
  const record = (await core.store.unlearning.list({ runId: header.runId, clientId: client.id, states: ['assigned', 'training'] }))[0];
  if (!record) throw new RoundClosedError(`client ${client.id} holds no unlearning task of run ${header.runId} (it finished, failed or its deadline passed); pull a new task`);
  if (header.taskId !== unlearningTaskId(record.runId, client.id)) throw new InvalidRequestError(`task_id ${JSON.stringify(header.taskId)} is not this client's unlearning task`);
  if (header.unlearningMetadata === '') throw new InvalidRequestError('an unlearning upload carries the package header in unlearning_metadata');
  const assembler = new TensorAssembler(manifest, { maxTotalBytes: core.config.maxUpdateBytes });
  if (first.chunk) assembler.push(first.chunk as WireChunk);
  for (let next = await rest.next(); !next.done; next = await rest.next()) {
    const m = requireWellFormed(next.value, 'PushUpdateRequest');
    if (m.auth || m.body.length > 0) throw new ProtocolError('only the first PushUpdate message may carry auth and body', 'unexpected_header');
    if (!m.chunk) throw new ProtocolError('a PushUpdate message after the first must carry a chunk', 'missing_header');
    assembler.push(m.chunk);
  }
  const tensors = assembler.finish();
  const bytes = encodeSafetensors(tensors, { [PACKAGE_METADATA_KEY]: header.unlearningMetadata });
  if (record.state === 'assigned') await core.store.unlearning.transition(record.id, 'assigned', 'training');
  if (!(await core.store.unlearning.transition(record.id, 'training', 'verifying'))) throw new RoundClosedError(`unlearning ${record.id} moved on while the upload arrived`);
  const ctx = await runs.context(record.runId);
  const state = await verifyAndActivate(core, (await core.store.unlearning.get(record.id))!, bytes, ctx.layout.model);
  core.events.emit({ type: 'update_accepted', runId: record.runId, round: 0, clientId: client.id, bytes: manifest.totalBytes });
  if (state === 'active') runs.kick(record.runId); // a client that forgot all its data leaves the sampling
  return { result: 'RESULT_ACCEPTED', sha256: manifest.sha256, storedBytes: manifest.totalBytes };
}
