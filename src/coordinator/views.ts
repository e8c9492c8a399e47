/** Store records → the lethe.v1 messages operators see (run.proto, admin.proto). Pure. */
import type { ClientRecord, RoundRecord, RunRecord } from '../store/store.js';
import type { ClientInfo, RoundInfo, RoundState, Run, RunState } from '../wire/admin-messages.js';
import { InvalidRequestError } from './errors.js';
import { capabilitiesOf } from './runs.js';

const RUN_STATE: Readonly<Record<RunRecord['state'], RunState>> = Object.freeze({
  pending: 'RUN_STATE_PENDING',
  running: 'RUN_STATE_RUNNING',
  completed: 'RUN_STATE_COMPLETED',
  budget_exhausted: 'RUN_STATE_BUDGET_EXHAUSTED',
  failed: 'RUN_STATE_FAILED',
  stopped: 'RUN_STATE_STOPPED',
});

const ROUND_STATE: Readonly<Record<RoundRecord['state'], RoundState>> = Object.freeze({
  open: 'ROUND_STATE_OPEN',
  aggregating: 'ROUND_STATE_AGGREGATING',
  closed: 'ROUND_STATE_COMPLETED',
  failed: 'ROUND_STATE_FAILED',
});

export interface PrivacyView {
  readonly epsilonSpent: number;
  readonly epsilonBudget: number;
  readonly delta: number;
}

function hexBytes(sha: string | null): Buffer {
  return Buffer.from(sha ?? '', 'hex');
}

export function runView(run: RunRecord, privacy: PrivacyView | undefined): Run {
  const name = typeof run.config.name === 'string' ? run.config.name : run.id;
  const rounds = typeof run.config.rounds === 'number' ? run.config.rounds : 0;
  return {
    runId: run.id,
    name,
    state: RUN_STATE[run.state],
    currentRound: run.currentRound,
    rounds,
    createdAtMs: run.createdAt,
    configJson: JSON.stringify(run.config),
    adapterSha256: hexBytes(run.globalAdapterSha),
    privacy: privacy ?? null,
    message: run.message ?? '',
  };
}

export function roundView(round: RoundRecord): RoundInfo {
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(round.metrics)) if (typeof v === 'number' && Number.isFinite(v)) metrics[k] = v;
  // An open round's deadline travels as a metric so `lethe status` can show the time left.
  if (round.state === 'open') metrics.deadline_ms = round.deadlineAt;
  const failed = round.state === 'open' ? 0 : (metrics.failed ?? round.sampledClientIds.length - round.updatesReceived);
  return {
    runId: round.runId,
    round: round.round,
    state: ROUND_STATE[round.state],
    sampled: round.sampledClientIds.length,
    accepted: round.updatesReceived,
    failed,
    startedAtMs: round.startedAt,
    finishedAtMs: round.closedAt ?? 0,
    adapterSha256: hexBytes(round.adapterShaAfter),
    metrics,
    epsilonAfter: metrics.epsilon_spent ?? 0,
  };
}

export function clientView(client: ClientRecord, lastSeenMs: number, online: boolean): ClientInfo {
  return {
    clientId: client.id,
    name: client.name,
    publicKey: Buffer.from(client.publicKey),
    capabilities: capabilitiesOf(client),
    enrolledAtMs: client.enrolledAt,
    lastSeenMs,
    online: online && client.revokedAt === null,
    revoked: client.revokedAt !== null,
    // The store keeps when, not why; the reason is in the coordinator's log.
    revokeReason: '',
  };
}

/** Offset pagination: `pageToken` is the decimal offset of the page's first item. */
export function page<T>(items: readonly T[], pageSize: number, pageToken: string): { items: T[]; next: string } {
  const size = pageSize === 0 ? 100 : Math.min(pageSize, 1000);
  const offset = pageToken === '' ? 0 : Number(pageToken);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidRequestError(`page_token ${JSON.stringify(pageToken)} is not one this coordinator issued`);
  const end = offset + size;
  return { items: items.slice(offset, end), next: end < items.length ? String(end) : '' };
}
