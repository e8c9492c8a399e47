/**
 * FleetService.PushUpdate on the coordinator (fleet.proto). In order:
 *   1. the first message is verified (signature over the serialized UpdateHeader, which holds the manifest and thus
 *      the payload's SHA-256, so the chunks need no signatures of their own);
 *   2. idempotency: an update already stored for this run, round and client is answered DUPLICATE at once when the
 *      hash matches (a retried upload, even after the round closed) and ALREADY_EXISTS when it does not;
 *   3. the round: it must be the run's current round, open, before its deadline, the client sampled in it and the
 *      task id its assignment;
 *   4. the payload: the manifest must name exactly the task's upload tensors with their shapes, every chunk must
 *      match its running digest, the whole must hash to the manifest and hold only finite values;
 *   5. the payload is stored as a blob, then the update record (which bumps the round's counters) — and only then is
 *      the upload acknowledged, so an acknowledged update survives kill -9.
 */
import { CLIP_INDICATOR_METRIC } from '../privacy/central.js';
import type { RequestAuthenticator } from '../auth/authenticator.js';
import { InvalidTransitionError } from '../store/errors.js';
import { hexDigest, TensorAssembler, type WireChunk } from '../wire/codec.js';
import { ProtocolError } from '../wire/errors.js';
import type { MessageInput, PushUpdateRequest, PushUpdateResponse, UpdateHeader } from '../wire/messages.js';
import { methodPath } from '../wire/proto.js';
import type { CoordinatorCore } from './core.js';
import { InvalidRequestError, NotSampledError, RoundClosedError, UpdateConflictError, WrongRoundError } from './errors.js';
import { authenticate, requireWellFormed } from './handlers.js';
import type { RunRegistry } from './runs.js';
import { taskId } from './tasks.js';

const METHOD = methodPath('fleet', 'PushUpdate');

/** Keys of UpdateHeader.metrics kept with the update (finite numbers only; they are informational). */
function updateMetrics(header: UpdateHeader, reportsClipIndicator: boolean): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(header.metrics)) if (Number.isFinite(v) && k.length <= 64) out[k] = v;
  if (reportsClipIndicator) out[CLIP_INDICATOR_METRIC] = header.withinClipNorm ? 1 : 0;
  return out;
}

function duplicate(sha256: Buffer, bytes: number): MessageInput<PushUpdateResponse> {
  return { result: 'RESULT_DUPLICATE', sha256, storedBytes: bytes };
}

export async function ingestUpdate(
  core: CoordinatorCore,
  runs: RunRegistry,
  authenticator: RequestAuthenticator,
  call: AsyncIterable<PushUpdateRequest>,
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
  if (header.kind !== 'UPDATE_KIND_DENSE') throw new InvalidRequestError(`update kind ${header.kind} is not what this task asks for; send UPDATE_KIND_DENSE`);
  if (!(header.numExamples >= 1)) throw new InvalidRequestError('num_examples must be ≥ 1: it is the update\'s aggregation weight');

  const assembler = new TensorAssembler(manifest, { maxTotalBytes: core.config.maxUpdateBytes, expected: ctx.layout.upload });
  const payload = Buffer.allocUnsafe(manifest.totalBytes);
  let offset = 0;
  const feed = (chunk: WireChunk): void => {
    assembler.push(chunk);
    payload.set(chunk.data, offset);
    offset += chunk.data.length;
  };
  if (first.chunk) feed(first.chunk);
  for (let next = await it.next(); !next.done; next = await it.next()) {
    const m = requireWellFormed(next.value, 'PushUpdateRequest');
    if (m.auth || m.body.length > 0) throw new ProtocolError('only the first PushUpdate message may carry auth and body', 'unexpected_header');
    if (!m.chunk) throw new ProtocolError('a PushUpdate message after the first must carry a chunk', 'missing_header');
    feed(m.chunk);
  }
  assembler.finish(); // completeness, total digest, finiteness
  if (core.config.clock() > round.deadlineAt) throw late();

  await store.blobs.put(payload);
  const metrics = updateMetrics(header, ctx.plan?.mode === 'central' && ctx.config.privacy?.adaptive === true);
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
  runs.kick(header.runId);
  return { result: 'RESULT_ACCEPTED', sha256: manifest.sha256, storedBytes: manifest.totalBytes };
}
