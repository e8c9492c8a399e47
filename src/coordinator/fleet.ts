/**
 * FleetService (fleet.proto): heartbeats, task long-polls, adapter downloads, uploads (ingest.ts) and failure
 * reports. Every request is signed; the body is parsed only after its signature verified.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { RequestAuthenticator } from '../auth/authenticator.js';
import { encodeTensors, hexDigest, type EncodedTensors } from '../wire/codec.js';
import type { FetchAdapterResponse, MessageInput, SignedRequest, Task } from '../wire/messages.js';
import { methodPath } from '../wire/proto.js';
import { clientStreamHandler, serverStreamHandler, unaryHandler } from '../wire/server.js';
import type { FleetHandlers } from '../wire/services.js';
import { fetchAdapterMessages, writeAll } from '../wire/transfer.js';
import type { CoordinatorCore } from './core.js';
import { CoordinatorDrainingError, InvalidRequestError, NotFoundError, NotSampledError, WrongRoundError } from './errors.js';
import { authenticate, guardOpen, handlerOptions, requireWellFormed } from './handlers.js';
import { ingestUpdate, OFF_THREAD_MIN_BYTES } from './ingest.js';
import { announce } from './peers.js';
import { essaBasisLayout, KIND_OF_MODE, seedPoolLayout, uploadLayoutOf } from './forward-only.js';
import { layoutBytes, unpackTensors, type Layout } from './layout.js';
import { PayloadReserve } from './payload-reserve.js';
import { currentStrategyState } from './run-strategy.js';
import type { RunRegistry } from './runs.js';
import { findTask, parseTaskId, pendingRound } from './tasks.js';
import { submitOwnUnlearning } from './unlearning-admin.js';
import { currentUnlearning, unlearningFailed, unlearningPayload } from './unlearning-tasks.js';

/** Encoded payloads kept for FetchAdapter: a round's clients all download the same ones. */
const ADAPTER_CACHE_SIZE = 4;

export function fleetHandlers(core: CoordinatorCore, runs: RunRegistry, authenticator: RequestAuthenticator): FleetHandlers {
  const options = handlerOptions(core);
  // Promises, so the clients of a round asking at once share one read and one encoding.
  const cache = new Map<string, Promise<EncodedTensors>>();
  const reserve = new PayloadReserve(core.config.payloadReserveBytes, (buffer) => core.digests.prefault(buffer), core.config.clock);

  /**
   * Sets a faulted-in payload buffer aside for a large upload `task` asks for (payload-reserve.ts), while the client
   * trains. Best effort: without it the upload allocates its buffer as it arrives, so nothing here fails a PullTask.
   */
  function reservePayload(task: Task): void {
    const kind = KIND_OF_MODE[task.mode];
    if (task.round < 1 || !kind || reserve.limitBytes === 0) return;
    void runs.context(task.runId).then(
      (ctx) => {
        const bytes = layoutBytes(uploadLayoutOf(ctx, kind));
        if (bytes >= OFF_THREAD_MIN_BYTES) void reserve.reserve(task.taskId, bytes, task.deadlineMs);
      },
      () => undefined,
    );
  }
  const bodies = core.proto.bodies;

  async function signed(method: string, request: SignedRequest) {
    guardOpen(core, `serve ${method}`);
    const req = requireWellFormed(request, `${method} request`);
    const client = await authenticate(core, authenticator, methodPath('fleet', method), req.auth, req.body);
    return { client, body: req.body };
  }

  /** Payload `sha` of `layout`, encoded; with `only`, just the tensors it names (FetchAdapterBody.omit_frozen). */
  function encodedPayload(sha: string, layout: Layout, only?: ReadonlySet<string>): Promise<EncodedTensors> {
    const key = only ? `${sha}/travelling` : sha;
    const hit = cache.get(key);
    if (hit) return hit;
    const encoded = (async () => {
      const bytes = await core.store.blobs.get(sha);
      if (!bytes) throw new NotFoundError(`payload ${sha} is not stored`);
      const tensors = unpackTensors(bytes, layout);
      return encodeTensors(only ? new Map([...tensors].filter(([name]) => only.has(name))) : tensors);
    })();
    cache.set(key, encoded);
    encoded.catch(() => cache.get(key) === encoded && cache.delete(key));
    if (cache.size > ADAPTER_CACHE_SIZE) cache.delete(cache.keys().next().value!);
    return encoded;
  }

  return {
    Heartbeat: unaryHandler(async (request: SignedRequest) => {
      const req = requireWellFormed(request, 'HeartbeatRequest');
      const online = req.auth ? core.presence.isOnline(req.auth.clientId) : false;
      const { client, body } = await signed('Heartbeat', req);
      const beat = bodies.heartbeat.decode(body);
      // A client coming (back) online may be what a run waiting for enough clients needs.
      if (!online) void runs.kickActive().catch(() => undefined);
      let cancelTask = false;
      if (beat.taskId !== '') {
        const t = parseTaskId(beat.taskId);
        if (t.round === 0) {
          const held = await currentUnlearning(core, runs, client.id, false);
          cancelTask = t.clientId !== client.id || held?.state !== 'assigned' || held.runId !== t.runId;
        }
        else cancelTask = t.clientId !== client.id || (await pendingRound(core, runs, t.runId, client.id))?.round !== t.round;
      }
      const taskWaiting = !core.lifecycle.draining && (await findTask(core, runs, client, false)) !== undefined;
      return { taskWaiting, serverTimeMs: core.config.clock(), heartbeatIntervalMs: core.config.heartbeatIntervalMs, cancelTask };
    }, options),

    PullTask: unaryHandler(async (request: SignedRequest) => {
      const { client, body } = await signed('PullTask', request);
      const { waitMs } = bodies.pullTask.decode(body);
      const until = core.config.clock() + Math.min(waitMs, core.config.maxPullWaitMs);
      for (;;) {
        if (core.lifecycle.draining || core.lifecycle.closed) return { task: null, retryAfterMs: core.config.retryAfterMs };
        const task = await findTask(core, runs, client);
        if (task) reservePayload(task);
        const left = until - core.config.clock();
        if (task || left <= 0) return { task: task ?? null, retryAfterMs: task ? 0 : core.config.retryAfterMs };
        await core.presence.wait(client.id, left);
      }
    }, options),

    FetchAdapter: serverStreamHandler(async (request: SignedRequest, call: ServerWritableStream<SignedRequest, MessageInput<FetchAdapterResponse>>) => {
      const { client, body } = await signed('FetchAdapter', request);
      const { runId, sha256, omitFrozen } = bodies.fetchAdapter.decode(body);
      if (sha256.length !== 32) throw new InvalidRequestError(`sha256 must be 32 bytes, got ${sha256.length}`);
      const sha = hexDigest(sha256);
      const run = await core.store.runs.get(runId);
      if (!run) throw new NotFoundError(`run ${runId} does not exist`);
      const forUnlearning = await unlearningPayload(core, runs, client, runId, sha);
      if (forUnlearning) {
        const encoded = forUnlearning === 'global' ? await encodedPayload(sha, (await runs.context(runId)).layout.adapter) : encodeTensors(forUnlearning);
        await writeAll(call, fetchAdapterMessages(encoded));
        return;
      }
      const round = run.currentRound > 0 ? await core.store.rounds.get(runId, run.currentRound) : undefined;
      if (!round || !round.sampledClientIds.includes(client.id)) throw new NotSampledError(client.id, runId, run.currentRound);
      const ctx = await runs.context(runId);
      let layout: Layout | undefined;
      let only: ReadonlySet<string> | undefined;
      if (sha === round.adapterShaBefore || sha === run.globalAdapterSha) {
        layout = ctx.layout.adapter;
        // The frozen tensors are those no upload carries (FFA's lora_A); with none, the answer is the whole adapter.
        if (omitFrozen && ctx.layout.upload.size < layout.size) only = new Set(ctx.layout.upload.keys());
      } else {
        // The round's forward-only payloads: the ESSA basis and FedKSeed's pool its tasks name.
        const state = currentStrategyState(await core.store.runs.getStrategyState(runId), (r) => r < round.round);
        if (sha === state.essa?.basis) layout = essaBasisLayout(ctx);
        else if (sha === state.seedPool) layout = seedPoolLayout(ctx);
      }
      if (!layout) throw new NotFoundError(`payload ${sha} is not one run ${runId}'s current round names; fetch the one your task names`);
      const encoded = await encodedPayload(sha, layout, only);
      runs.scratch(runId, round.round).bytesDown += encoded.manifest.totalBytes;
      await writeAll(call, fetchAdapterMessages(encoded));
    }, options),

    PushUpdate: clientStreamHandler(async (call) => {
      guardOpen(core, 'accept an update');
      if (core.lifecycle.draining) throw new CoordinatorDrainingError('accept an update');
      return ingestUpdate(core, runs, authenticator, call, reserve);
    }, options),

    ReportFailure: unaryHandler(async (request: SignedRequest) => {
      const { client, body } = await signed('ReportFailure', request);
      const report = bodies.reportFailure.decode(body);
      const t = parseTaskId(report.taskId);
      if (t.round === 0 && report.round === 0 && t.clientId === client.id && t.runId === report.runId) {
        await unlearningFailed(core, client, report.runId, `${report.reason}: ${report.message}`);
        return {};
      }
      if (t.clientId !== client.id || t.runId !== report.runId || t.round !== report.round) {
        throw new InvalidRequestError(`task_id ${report.taskId} is not this client's task for round ${report.round} of run ${report.runId}`);
      }
      const round = await pendingRound(core, runs, report.runId, client.id);
      if (round?.round !== report.round) throw new WrongRoundError(`round ${report.round} of run ${report.runId} is not waiting for this client`);
      const reason = `${report.reason}: ${report.message}`.slice(0, 512);
      runs.scratch(report.runId, report.round).failures.set(client.id, reason);
      announce(core, { type: 'task.failed', runId: report.runId, round: report.round, clientId: client.id, reason }); // for the run's leader
      core.config.log(`client ${client.id} cannot finish ${report.taskId}: ${report.reason} ${report.message}`.slice(0, 512));
      runs.kick(report.runId);
      return {};
    }, options),

    SubmitUnlearning: unaryHandler(async (request: SignedRequest) => {
      const { client, body } = await signed('SubmitUnlearning', request);
      return submitOwnUnlearning(core, client, bodies.ownUnlearning.decode(body));
    }, options),
  };
}
