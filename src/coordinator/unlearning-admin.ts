/**
 * AdminService's unlearning calls (admin.proto: SubmitUnlearning, GetUnlearning, ListUnlearning; ALGORITHMS.md §6) and
 * FleetService.SubmitUnlearning, by which an enrolled client asks to forget its own data.
 * A request is checked completely before it is stored, so a rejected one leaves nothing behind: the run must exist,
 * the selector must select something, every named client must be enrolled and not revoked, and the same forget
 * selection must not already be queued, running or active for the run. Whether the selection matches any local
 * example only the client can tell; it reports an empty one and the request fails with that reason.
 */
import { randomBytes } from 'node:crypto';
import { TARGET_POLICIES, type TargetPolicy } from '../unlearning/index.js';
import type { ClientRecord, JsonObject, UnlearningRequestRecord, UnlearningState } from '../store/store.js';
import type { ListUnlearningRequest, ListUnlearningResponse, SubmitUnlearningRequest, UnlearningRequest, UnlearningState as WireState } from '../wire/admin-messages.js';
import type { ForgetSelector, OwnUnlearningBody } from '../wire/messages.js';
import type { CoordinatorCore } from './core.js';
import { DuplicateRequestError, InvalidRequestError, NotFoundError, RunStateError } from './errors.js';
import { page } from './views.js';

/** Default replacement targets for classification: a fixed wrong label per input (unlearning/adapter.ts). */
export const DEFAULT_TARGET_POLICY: TargetPolicy = 'input_hash_label';

/** The stored selector: the wire ForgetSelector plus the target policy. */
export interface StoredSelector {
  readonly exampleIds: readonly string[];
  readonly label: string;
  readonly query: string;
  readonly group: string;
  readonly match: string;
  readonly targetPolicy: TargetPolicy;
}

export function storedSelector(record: UnlearningRequestRecord): StoredSelector {
  const s = record.selector as unknown as Partial<StoredSelector>;
  return {
    exampleIds: s.exampleIds ?? [],
    label: s.label ?? '',
    query: s.query ?? '',
    group: s.group ?? '',
    match: s.match ?? '',
    targetPolicy: s.targetPolicy ?? DEFAULT_TARGET_POLICY,
  };
}

export function wireSelector(s: StoredSelector): ForgetSelector {
  return { exampleIds: [...s.exampleIds], label: s.label, query: s.query, group: s.group, match: s.match };
}

const WIRE_STATE: Readonly<Record<UnlearningState, WireState>> = Object.freeze({
  queued: 'UNLEARNING_STATE_PENDING',
  assigned: 'UNLEARNING_STATE_RUNNING',
  training: 'UNLEARNING_STATE_RUNNING',
  verifying: 'UNLEARNING_STATE_RUNNING',
  active: 'UNLEARNING_STATE_COMPLETED',
  failed: 'UNLEARNING_STATE_FAILED',
});

export function unlearningView(r: UnlearningRequestRecord): UnlearningRequest {
  const s = storedSelector(r);
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(r.metrics)) if (typeof v === 'number') metrics[k] = v;
  return {
    requestId: r.id,
    runId: r.runId,
    index: r.index,
    state: WIRE_STATE[r.state],
    forget: wireSelector(s),
    clientIds: [...r.clientIds],
    targetPolicy: s.targetPolicy,
    reason: r.reason,
    createdAtMs: r.createdAt,
    completedAtMs: r.completedAt ?? (r.state === 'failed' ? r.updatedAt : 0),
    adapterSha256: Buffer.from(r.resultAdapterSha ?? '', 'hex'),
    metrics,
    message: r.failureReason ?? (r.state === 'failed' ? '' : r.state),
  };
}

function validRegex(pattern: string): void {
  try {
    new RegExp(pattern, 'u');
  } catch (err) {
    throw new InvalidRequestError(`forget.match ${JSON.stringify(pattern)} is not a regular expression: ${(err as Error).message}`);
  }
}

/** Checks a submission fully, then stores it queued. `by` names the submitter in the log. */
export async function submitUnlearning(core: CoordinatorCore, request: SubmitUnlearningRequest, by = 'admin'): Promise<UnlearningRequest> {
  const { store } = core;
  if (request.runId === '') throw new InvalidRequestError('run_id is required');
  const run = await store.runs.get(request.runId);
  if (!run) throw new NotFoundError(`run ${request.runId} does not exist`);
  const f = request.forget;
  const exampleIds = (f?.exampleIds ?? []).filter((id) => id !== '');
  const selector = { exampleIds, label: f?.label ?? '', query: f?.query ?? '', group: f?.group ?? '', match: f?.match ?? '' };
  if (selector.exampleIds.length === 0 && !selector.label && !selector.query && !selector.group && !selector.match) {
    throw new InvalidRequestError('forget selects nothing: set example_ids, label, group, match or query');
  }
  if (selector.match) validRegex(selector.match);
  const policy = (request.targetPolicy || DEFAULT_TARGET_POLICY) as TargetPolicy;
  if (!TARGET_POLICIES.includes(policy)) throw new InvalidRequestError(`target_policy ${JSON.stringify(request.targetPolicy)} is not one of ${TARGET_POLICIES.join(', ')}`);
  if (request.clientIds.length === 0) throw new InvalidRequestError('client_ids is required: name the client(s) holding the data to forget');
  const clientIds = [...new Set(request.clientIds)].sort();
  for (const id of clientIds) {
    const client = await store.clients.get(id);
    if (!client) throw new NotFoundError(`client ${id} is not enrolled`);
    if (client.revokedAt !== null) throw new RunStateError(`client ${id} is revoked and cannot run an unlearning task; its data left the federation with it`);
  }
  const stored: StoredSelector = { ...selector, targetPolicy: policy };
  const key = JSON.stringify([stored, clientIds]);
  const open = await store.unlearning.list({ runId: run.id, states: ['queued', 'assigned', 'training', 'verifying', 'active'] });
  const same = open.find((r) => JSON.stringify([storedSelector(r), [...r.clientIds].sort()]) === key);
  if (same) throw new DuplicateRequestError(`the same forget selection for the same clients is already request ${same.id} (${same.state}); check it with GetUnlearning`);
  const record = await store.unlearning.create({
    id: `unl_${randomBytes(6).toString('hex')}`,
    runId: run.id,
    clientIds,
    selector: stored as unknown as JsonObject,
    reason: request.reason,
  });
  core.config.log(`unlearning ${record.id} (#${record.index}) submitted by ${by} for run ${run.id}, clients ${clientIds.join(', ')}${request.reason ? `: ${request.reason}` : ''}`);
  return unlearningView(record);
}

/**
 * FleetService.SubmitUnlearning: `client` (already authenticated, so enrolled and not revoked) asks to forget some of
 * its own data. The request names the signer and nobody else, so a client can never put work on another.
 */
export function submitOwnUnlearning(core: CoordinatorCore, client: ClientRecord, body: OwnUnlearningBody): Promise<UnlearningRequest> {
  return submitUnlearning(core, { runId: body.runId, forget: body.forget, clientIds: [client.id], targetPolicy: body.targetPolicy, reason: body.reason }, `client ${client.id}`);
}

export async function getUnlearning(core: CoordinatorCore, requestId: string): Promise<UnlearningRequest> {
  if (requestId === '') throw new InvalidRequestError('request_id is required');
  const record = await core.store.unlearning.get(requestId);
  if (!record) throw new NotFoundError(`unlearning request ${requestId} does not exist`);
  return unlearningView(record);
}

export async function listUnlearning(core: CoordinatorCore, request: ListUnlearningRequest): Promise<ListUnlearningResponse> {
  const all = (await core.store.unlearning.list(request.runId ? { runId: request.runId } : {})).reverse();
  const { items, next } = page(all, request.pageSize, request.pageToken);
  return { requests: items.map(unlearningView), nextPageToken: next };
}
