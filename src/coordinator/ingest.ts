/**
 * FleetService.PushUpdate on the coordinator (fleet.proto). In order:
 *   1. the first message is verified (signature over the serialized UpdateHeader, which holds the manifest and thus
 *      the payload's SHA-256, so the chunks need no signatures of their own);
 *   2. idempotency: an update already stored for this run, round and client is answered DUPLICATE at once when the
 *      hash matches (a retried upload, even after the round closed) and ALREADY_EXISTS when it does not;
 *   3. the round: it must be the run's current round, open, before its deadline, the client sampled in it and the
 *      task id its assignment;
 *   4. the payload: its kind must be the one the client's training mode answers with (forward-only.ts), the manifest
 *      must name exactly that kind's tensors with their shapes (dense: the task's upload tensors; seed scalars:
 *      seed_scalars [K]; ESSA: fitness [pairs, 2]) and is bounded by that layout's size, every chunk must match its
 *      running digest (checked on a worker thread for large payloads, all before step 5 commits), the whole must hash
 *      to the manifest and hold only finite values;
 *   5. the payload is stored as a blob while it arrives (hashed once: the verified running digest is its address),
 *      made durable, then the update record (which bumps the round's counters) — and only then is the upload
 *      acknowledged, so an acknowledged update survives kill -9.
 */
import { CLIP_INDICATOR_METRIC } from '../privacy/central.js';
import type { RequestAuthenticator } from '../auth/authenticator.js';
import { openBlobWriter } from '../store/blob-writer.js';
import { InvalidTransitionError } from '../store/errors.js';
import { hexDigest, TensorAssembler, type WireChunk } from '../wire/codec.js';
import { ProtocolError } from '../wire/errors.js';
import type { MessageInput, PushUpdateRequest, PushUpdateResponse, TensorEntry, UpdateHeader, UpdateKind } from '../wire/messages.js';
import type { ClientRecord } from '../store/store.js';
import { methodPath } from '../wire/proto.js';
import type { CoordinatorCore } from './core.js';
import type { PayloadReserve } from './payload-reserve.js';
import { InvalidRequestError, InvalidUpdateError, NotSampledError, RoundClosedError, UpdateConflictError, WrongRoundError } from './errors.js';
import { FITNESS, KIND_OF_MODE, kindCode, SEED_SCALARS, UPDATE_KIND_METRIC, uploadLayoutOf } from './forward-only.js';
import { layoutBytes } from './layout.js';
import { authenticate, requireWellFormed } from './handlers.js';
import { announce } from './peers.js';
import { currentStrategyState } from './run-strategy.js';
import { modeFor, type RunContext, type RunRegistry } from './runs.js';
import { taskId } from './tasks.js';
import { ingestUnlearning } from './unlearning-tasks.js';

const METHOD = methodPath('fleet', 'PushUpdate');

/** Keys of UpdateHeader.metrics kept with the update (finite numbers only; they are informational). */
function updateMetrics(header: UpdateHeader, reportsClipIndicator: boolean): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(header.metrics)) if (Number.isFinite(v) && k.length <= 64) out[k] = v;
  if (reportsClipIndicator) out[CLIP_INDICATOR_METRIC] = header.withinClipNorm ? 1 : 0;
  return out;
}

/** The upload kind this client's task asks for; InvalidUpdateError when the header names another. */
function expectedKind(ctx: RunContext, client: ClientRecord, sent: UpdateKind): UpdateKind {
  const candidate = modeFor(ctx, client);
  const wanted = candidate && KIND_OF_MODE[candidate.training];
  if (!wanted) throw new InvalidRequestError(`client ${client.id} no longer declares a mode run ${ctx.id} serves; pull a new task`);
  if (sent !== wanted) throw new InvalidUpdateError(`update kind ${sent} is not what this task (${candidate.training}) asks for; send ${wanted}`, 'wrong_update_kind');
  return wanted;
}

/**
 * Clear refusals for forward-only uploads before any chunk is read (the assembler would also refuse them, less
 * helpfully): the scalar vector must have one entry per pool seed (positions are the seed indices, so a longer vector
 * names seeds the pool does not have), and the fitness tensor one row per member the task assigned.
 */
function checkForwardOnlyManifest(ctx: RunContext, kind: UpdateKind, entries: readonly TensorEntry[]): void {
  const only = entries.length === 1 ? entries[0]! : undefined;
  if (kind === 'UPDATE_KIND_SEED_SCALARS') {
    const k = ctx.config.local.seedPoolK;
    if (!only || only.name !== SEED_SCALARS || only.shape.length !== 1 || only.shape[0] !== k) {
      const got = only ? `${only.name} [${only.shape.join(', ')}]` : `${entries.length} tensors`;
      throw new InvalidUpdateError(`a seed upload is one tensor ${SEED_SCALARS} [${k}] (one scalar per pool seed index 0..${k - 1}), got ${got}`, 'wrong_pool_size');
    }
  } else if (kind === 'UPDATE_KIND_ESSA_FITNESS') {
    const p = ctx.config.local.essaPairs;
    if (!only || only.name !== FITNESS || only.shape.length !== 2 || only.shape[1] !== 2 || only.shape[0] !== p) {
      const got = only ? `${only.name} [${only.shape.join(', ')}]` : `${entries.length} tensors`;
      throw new InvalidUpdateError(`an ESSA upload is one tensor ${FITNESS} [${p}, 2], a row per member the task assigned (member_seeds), got ${got}`, 'unassigned_member');
    }
  }
}

function duplicate(sha256: Buffer, bytes: number): MessageInput<PushUpdateResponse> {
  return { result: 'RESULT_DUPLICATE', sha256, storedBytes: bytes };
}

/** Payloads from this size on have their running digests checked on a worker thread (`core.digests`); smaller ones, such
 * as seed-scalar uploads, on the event loop, where a check costs less than handing it over. */
export const OFF_THREAD_MIN_BYTES = 4 << 20;

export async function ingestUpdate(
  core: CoordinatorCore,
  runs: RunRegistry,
  authenticator: RequestAuthenticator,
  call: AsyncIterable<PushUpdateRequest>,
  /** Buffers set aside for uploads of tasks handed out (fleet.ts). */
  reserve?: PayloadReserve,
): Promise<MessageInput<PushUpdateResponse>> {
  const it = call[Symbol.asyncIterator]();
  const head = await it.next();
  if (head.done) throw new ProtocolError('PushUpdate stream ended before its first message', 'missing_header');
  const first = requireWellFormed(head.value, 'PushUpdateRequest');
  const client = await authenticate(core, authenticator, METHOD, first.auth, first.body);
  const header = core.proto.bodies.updateHeader.decode(first.body);
  const manifest = header.manifest;
  if (!manifest) throw new ProtocolError('UpdateHeader has no manifest', 'missing_header');
  if (manifest.sha256.length !== 32) throw new InvalidRequestError(`manifest sha256 has ${manifest.sha256.length} bytes, expected 32`);
  if (header.kind === 'UPDATE_KIND_UNLEARNING') return ingestUnlearning(core, runs, client, header, first, it);
  if (header.runId === '' || header.round < 1) throw new InvalidRequestError('UpdateHeader needs run_id and round (≥ 1) from the task');
  const sha = hexDigest(manifest.sha256);
  const { store } = core;

  const stored = await store.updates.get(header.runId, header.round, client.id);
  if (stored) {
    if (stored.sha256 === sha) return duplicate(manifest.sha256, manifest.totalBytes);
    throw new UpdateConflictError(client.id, header.runId, header.round);
  }

  const ctx = await runs.context(header.runId);
  const run = (await store.runs.get(header.runId))!;
  if (header.round < run.currentRound || (header.round === run.currentRound && run.state !== 'running')) {
    throw new RoundClosedError(`round ${header.round} of run ${header.runId} is closed; pull a new task`);
  }
  if (header.round > run.currentRound) {
    throw new WrongRoundError(`round ${header.round} of run ${header.runId} has not started (current round ${run.currentRound})`);
  }
  const round = (await store.rounds.get(header.runId, header.round))!;
  if (round.state !== 'open') throw new RoundClosedError(`round ${header.round} of run ${header.runId} is closed (${round.state}); pull a new task`);
  if (!round.sampledClientIds.includes(client.id)) throw new NotSampledError(client.id, header.runId, header.round);
  const expectedTask = taskId(header.runId, header.round, client.id);
  if (header.taskId !== expectedTask) throw new InvalidRequestError(`task_id ${JSON.stringify(header.taskId)} is not this client's task ${expectedTask}`);
  const late = (): RoundClosedError =>
    new RoundClosedError(`round ${header.round} of run ${header.runId} closed at its deadline ${new Date(round.deadlineAt).toISOString()}; the update came too late`, 'late');
  if (core.config.clock() > round.deadlineAt) throw late();
  const kind = expectedKind(ctx, client, header.kind);
  if (!(header.numExamples >= 1)) throw new InvalidRequestError('num_examples must be ≥ 1: it is the update\'s aggregation weight');
  const expected = uploadLayoutOf(ctx, kind);
  checkForwardOnlyManifest(ctx, kind, manifest.entries);
  if (kind === 'UPDATE_KIND_ESSA_FITNESS' && !currentStrategyState(await store.runs.getStrategyState(header.runId), (r) => r < header.round).essa) {
    // Only a client sampled as ESSA gets members, and then the round's generation exists; anything else would leave
    // the round with fitness rows it cannot use.
    throw new InvalidUpdateError(`round ${header.round} of run ${header.runId} has no ESSA generation; no members were assigned to this client`, 'unassigned_member');
  }

  // The limit is the expected payload itself, so a client cannot make the coordinator buffer more than its task implies.
  const limits = { maxTotalBytes: Math.min(core.config.maxUpdateBytes, layoutBytes(expected)), expected };
  const offThread = manifest.totalBytes >= OFF_THREAD_MIN_BYTES ? core.digests : undefined;
  const assembler = new TensorAssembler(manifest, limits, offThread, offThread && reserve?.take(header.taskId, manifest.totalBytes));
  // Verified chunks go to the blob store as they arrive; the digest the assembler verified becomes the blob's address.
  const blob = openBlobWriter(store.blobs, manifest.totalBytes);
  try {
    const feed = (chunk: WireChunk): void => blob.write(assembler.push(chunk));
    if (first.chunk) feed(first.chunk);
    for (let next = await it.next(); !next.done; next = await it.next()) {
      const m = requireWellFormed(next.value, 'PushUpdateRequest');
      if (m.auth || m.body.length > 0) throw new ProtocolError('only the first PushUpdate message may carry auth and body', 'unexpected_header');
      if (!m.chunk) throw new ProtocolError('a PushUpdate message after the first must carry a chunk', 'missing_header');
      feed(m.chunk);
    }
    assembler.finish(); // completeness, total digest, finiteness
    await assembler.verified(); // every chunk's running digest, when checked on a worker thread
    if (core.config.clock() > round.deadlineAt) throw late();
  } catch (err) {
    assembler.abandon();
    await blob.abort();
    throw err;
  }
  await blob.commit(sha);
  const metrics = { ...updateMetrics(header, ctx.plan?.mode === 'central' && ctx.config.privacy?.adaptive === true), [UPDATE_KIND_METRIC]: kindCode(kind) };
  let put;
  try {
    put = await store.updates.put({ runId: header.runId, round: header.round, clientId: client.id, sha256: sha, numExamples: header.numExamples, metrics });
  } catch (err) {
    if (err instanceof InvalidTransitionError) throw new RoundClosedError(`round ${header.round} of run ${header.runId} closed while the update arrived`);
    throw err;
  }
  if (put.duplicate) {
    // A concurrent retry of the same upload won the race.
    if (put.record.sha256 === sha) return duplicate(manifest.sha256, manifest.totalBytes);
    throw new UpdateConflictError(client.id, header.runId, header.round);
  }
  runs.scratch(header.runId, header.round).failures.delete(client.id);
  core.events.emit({ type: 'update_accepted', runId: header.runId, round: header.round, clientId: client.id, bytes: manifest.totalBytes });
  announce(core, { type: 'update.accepted', runId: header.runId, round: header.round, clientId: client.id, numExamples: header.numExamples });
  runs.kick(header.runId);
  return { result: 'RESULT_ACCEPTED', sha256: manifest.sha256, storedBytes: manifest.totalBytes };
}
