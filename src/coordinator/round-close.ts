/**
 * Closing a round: open → aggregating, read the accepted updates back from the blob store, run the run's strategy
 * stack, store the new global adapter as a blob, persist the strategy state, and close the round (which moves the
 * run's global adapter in the same store transaction). A round with fewer than min_clients updates fails and keeps
 * the adapter. Everything is read from the store, so a round left aggregating by a crash closes the same way later.
 *
 * Nothing is copied on the way: the updates and the old adapter are read as Float32Array views of the stored bytes
 * (often the very buffers ingest verified, from the store's cache), which the strategies only read, and the new
 * adapter they return is stored as it lies, from memory set aside when the round opened (prepareOutput).
 */
import { UpdateRejectedError, type AggregateOutcome, type ClientFailure } from '../aggregation/index.js';
import { crashPointForTests } from '../privacy/crash-point.js';
import { putOwned } from '../store/blob-writer.js';
import type { JsonObject, RoundRecord } from '../store/store.js';
import type { HostTensor } from '../tensors/host.js';
import { PAGE_ALIGNED_MIN_BYTES, pageAlignedBuffer, sharedPageAlignedBuffer } from '../tensors/page-aligned.js';
import type { CoordinatorCore } from './core.js';
import { NotFoundError } from './errors.js';
import { denseRound, ESSA_POPULATION, kindOfMetrics, loadEssaState, nextSeedPool, storeEssaState, UPDATE_KIND_METRIC, uploadLayoutOf, type StoredUpdate } from './forward-only.js';
import { layoutBytes, packTensors, viewTensors } from './layout.js';
import { buildStrategy, currentStrategyState, strategyDocument, type StrategyState } from './run-strategy.js';
import type { RoundScratch, RunContext } from './runs.js';

export type CloseResult =
  | { readonly kind: 'closed'; readonly accepted: number; readonly metrics: Readonly<Record<string, number>>; readonly global: Map<string, HostTensor> }
  | { readonly kind: 'failed'; readonly reason: string }
  /** Another step moved the round first. */
  | { readonly kind: 'lost' };

/** Client-reported metric keys whose mean becomes the round's mean_local_loss (fleet.proto UpdateHeader.metrics). */
const LOSS_KEYS = ['loss', 'loss_after'] as const;

function finiteNumbers(metrics: JsonObject | Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return out;
}

/**
 * Memory for the new global adapter of a round just opened, faulted in on the worker thread while the clients train,
 * so that the close writes the aggregate into mapped pages instead of taking a page fault per 4 KiB on the event
 * loop (about 20 ms of a 0.1 s close for a 57 MB adapter here). Best effort: resolves undefined when the memory
 * cannot be had or faulted in, and the close allocates its own. No buffer at all for adapters below
 * PAGE_ALIGNED_MIN_BYTES (few faults) or above the payload reserve's limit (a coordinator told to hold little memory
 * aside).
 */
export function prepareOutput(core: CoordinatorCore, ctx: RunContext): Promise<SharedArrayBuffer | undefined> | undefined {
  const bytes = layoutBytes(ctx.layout.adapter);
  if (bytes < PAGE_ALIGNED_MIN_BYTES || bytes > core.config.payloadReserveBytes) return undefined;
  return (async () => {
    const buffer = sharedPageAlignedBuffer(bytes);
    await core.digests.prefault(buffer);
    return buffer;
  })().catch(() => undefined);
}

/** An allocator (RoundContext.allocate) that hands out `spare` once, to the first request of the adapter's size. */
export function allocatorWith(spare: SharedArrayBuffer | undefined, adapterBytes: number): (bytes: number) => ArrayBufferLike {
  return (bytes) => {
    const buffer = bytes === adapterBytes && spare !== undefined ? spare : pageAlignedBuffer(bytes);
    if (buffer === spare) spare = undefined;
    return buffer;
  };
}

async function blob(core: CoordinatorCore, sha256: string, what: string): Promise<Uint8Array> {
  const bytes = await core.store.blobs.get(sha256);
  if (!bytes) throw new NotFoundError(`${what} ${sha256} is missing from the blob store`);
  return bytes;
}

export async function closeRound(core: CoordinatorCore, ctx: RunContext, round: RoundRecord, scratch: RoundScratch): Promise<CloseResult> {
  const { store } = core;
  const { config, layout } = ctx;
  const n = round.round;
  if (round.state === 'open' && !(await store.rounds.transition(ctx.id, n, 'open', 'aggregating'))) return { kind: 'lost' };

  const updates = await store.updates.list(ctx.id, n);
  // The old adapter is read while the updates are (a store reading from the network overlaps the two), when the
  // round has enough of them to aggregate.
  const globalBytes = updates.length >= config.minClients ? blob(core, round.adapterShaBefore!, 'global adapter') : undefined;
  globalBytes?.catch(() => undefined); // awaited below; this only keeps a failure from going unhandled meanwhile
  const uploaded = new Set(updates.map((u) => u.clientId));
  const stored: StoredUpdate[] = [];
  let bytesUp = 0;
  for (const u of updates) {
    const kind = kindOfMetrics(u.metrics);
    const bytes = await blob(core, u.sha256, `update of client ${u.clientId}`);
    bytesUp += bytes.byteLength;
    const { [UPDATE_KIND_METRIC]: _, ...metrics } = finiteNumbers(u.metrics);
    stored.push({ clientId: u.clientId, numExamples: u.numExamples, kind, tensors: viewTensors(bytes, uploadLayoutOf(ctx, kind)), metrics });
  }
  const counts = {
    sampled: round.sampledClientIds.length,
    accepted: updates.length,
    failed: round.sampledClientIds.filter((id) => !uploaded.has(id)).length,
    bytes_up: bytesUp,
    bytes_down: scratch.bytesDown,
  };
  const fail = async (reason: string): Promise<CloseResult> => {
    await store.rounds.mergeMetrics(ctx.id, n, counts);
    return (await store.rounds.fail(ctx.id, n, reason)) ? { kind: 'failed', reason } : { kind: 'lost' };
  };
  if (updates.length < config.minClients) {
    return fail(`${updates.length} of ${counts.sampled} sampled clients sent an update before the deadline; min_clients is ${config.minClients}`);
  }

  const global = viewTensors(await globalBytes!, layout.adapter);
  // The state after the previous aggregation, unless this round's own state was saved before a crash.
  const doc = await store.runs.getStrategyState(ctx.id);
  const state = currentStrategyState(doc, (r) => r < n);
  const essaBefore = state.essa ? await loadEssaState(core, state.essa) : undefined;
  const dense = denseRound(ctx, n, global, stored, essaBefore, ctx.plan ? 'equal' : 'examples');
  let results = dense.results;
  const failures: ClientFailure[] = round.sampledClientIds
    .filter((id) => !uploaded.has(id))
    .map((id) => ({ clientId: id, reason: scratch.failures.get(id) ?? 'no update before the deadline' }));

  // The ESSA generation is one result standing for all of the round's ESSA uploads.
  const essaUploads = stored.filter((u) => u.kind === 'UPDATE_KIND_ESSA_FITNESS').length;
  const uploadsBehind = (rs: readonly { clientId: string }[]): number => rs.reduce((s, r) => s + (r.clientId === ESSA_POPULATION ? essaUploads : 1), 0);
  const built = buildStrategy(config, ctx.plan, state, round.expectedClients);
  // Taken off the scratch: a close retried after a failure must not write into what the blob store may hold by then.
  const output = scratch.output;
  scratch.output = undefined;
  const allocate = allocatorWith(await output, layoutBytes(layout.adapter));
  let outcome: AggregateOutcome | undefined;
  for (;;) {
    try {
      outcome = built.strategy.aggregate({ round: n, global, expectedClients: round.expectedClients, allocate }, results, failures);
      break;
    } catch (err) {
      // Updates were checked on arrival; a strategy that still rejects one drops that client, not the round.
      if (!(err instanceof UpdateRejectedError)) throw err;
      results = results.filter((r) => r.clientId !== err.clientId);
      failures.push({ clientId: err.clientId, reason: err.message });
      if (uploadsBehind(results) < config.minClients) return fail(`too few usable updates: ${err.message}`);
    }
  }
  if (!outcome) return fail('the aggregation strategy kept the old adapter (too few usable updates)');

  // Aggregation returns new tensors, back to back in layout order: packing is a view, and the store takes it as is.
  const { sha256 } = await putOwned(store.blobs, packTensors(outcome.global, layout.adapter));
  const after: StrategyState = {
    ...built.exportState(),
    ...(dense.essa ? { essa: await storeEssaState(core, ctx, dense.essa) } : state.essa ? { essa: state.essa } : {}),
    seedPool: await nextSeedPool(core, ctx, state, dense.poolIncrement),
  };
  await store.runs.putStrategyState(ctx.id, strategyDocument(n, state, after));
  const losses = results.map((r) => LOSS_KEYS.map((k) => r.metrics[k]).find((v) => v !== undefined)).filter((v): v is number => v !== undefined);
  const metrics: Record<string, number> = {
    ...finiteNumbers(outcome.metrics),
    ...counts,
    accepted: uploadsBehind(results),
    examples: results.reduce((s, r) => s + r.numExamples, 0),
    ...(losses.length > 0 ? { mean_local_loss: losses.reduce((a, b) => a + b, 0) / losses.length } : {}),
  };
  if (ctx.plan) metrics.epsilon_spent = (await core.ledger.spent(ctx.id)).epsilon;
  crashPointForTests('aggregate');
  if (!(await store.rounds.close(ctx.id, n, { adapterShaAfter: sha256, metrics }))) return { kind: 'lost' };
  return { kind: 'closed', accepted: uploadsBehind(results), metrics, global: outcome.global };
}
