/**
 * AdminService (admin.proto) and InferenceService. Every admin call presents the operator's bearer token
 * ("authorization: Bearer <token>", the token in <data-dir>/admin.token); the check is constant-time.
 */
import { randomBytes } from 'node:crypto';
import type { Metadata, ServerUnaryCall } from '@grpc/grpc-js';
import { requireAdminToken } from '../auth/admin-token.js';
import { issueJoinToken } from '../auth/enrollment.js';
import { initAdapter } from '../model/lora.js';
import type { JsonObject } from '../store/store.js';
import { runSpecToConfigJson } from '../wire/run-spec.js';
import { unaryHandler } from '../wire/server.js';
import type { AdminHandlers, InferenceHandlers } from '../wire/services.js';
import type { CreateRunRequest, RaiseBudgetRequest } from '../wire/admin-messages.js';
import { refreshBudget } from './budget.js';
import { LETHE_VERSION, type CoordinatorCore } from './core.js';
import { ConfigError, InvalidRequestError, RunStateError } from './errors.js';
import { guardOpen, handlerOptions, requireWellFormed } from './handlers.js';
import type { ModelService } from './inference.js';
import { packTensors, resolveModelConfig, runLayout } from './layout.js';
import { parseRunConfig, runConfigToJson } from './run-config.js';
import { privacyPlan } from './run-strategy.js';
import type { RunRegistry } from './runs.js';
import { getUnlearning, listUnlearning, submitUnlearning } from './unlearning-admin.js';
import { clientView, page, roundView, runView, type PrivacyView } from './views.js';

function bearer(metadata: Metadata): string | undefined {
  const value = metadata.get('authorization')[0];
  if (typeof value !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(value.trim());
  return m?.[1];
}

/**
 * Creates a run from its config JSON (the CreateRun body, or a --config file at start): validates it, stores the
 * seeded initial adapter and the run, records its privacy budget, and starts driving it. Returns the run id.
 */
export async function createRunFromConfig(deps: Pick<AdminDeps, 'core' | 'runs' | 'models'>, configJson: unknown): Promise<string> {
  const { core, runs, models } = deps;
  const { store } = core;
  const config = parseRunConfig(configJson);
  const plan = privacyPlan(config);
  const layout = runLayout(await resolveModelConfig(config.baseModel), config);
  const id = `run_${randomBytes(6).toString('hex')}`;
  const { sha256 } = await store.blobs.put(packTensors(initAdapter(layout.model, layout.lora), layout.adapter));
  if (config.evalData !== '') {
    // Fail now, naming the field, rather than after the first round.
    await models.evalSet({ id, config, layout, plan }).catch((err: unknown) => {
      throw new ConfigError(`eval_data: ${(err as Error).message}`, { cause: err });
    });
  }
  await store.runs.create({ id, config: runConfigToJson(config) as JsonObject, globalAdapterSha: sha256 });
  if (plan) await store.budgets.set(id, { epsilon: plan.epsilon, delta: plan.delta }, { actor: 'config', reason: 'run created' });
  core.config.log(`run ${id} created (${config.name}: ${config.rounds} rounds, ${config.aggregation}${plan ? `, ${plan.mode} DP σ=${plan.sigma.toPrecision(4)}` : ''})`);
  core.events.emit({ type: 'run_created', runId: id });
  runs.kick(id);
  return id;
}

export interface AdminDeps {
  readonly core: CoordinatorCore;
  readonly runs: RunRegistry;
  readonly models: ModelService;
  readonly adminToken: string;
}

export function adminHandlers(deps: AdminDeps): AdminHandlers {
  const { core, runs, models } = deps;
  const { store } = core;
  const options = handlerOptions(core);

  /** An admin handler: lifecycle guard, well-formedness, the bearer check, then `fn`. */
  function admin<Req, Res>(what: string, fn: (request: Req) => Promise<Res>) {
    return unaryHandler<Req, Res>(async (request, call: ServerUnaryCall<Req, Res>) => {
      guardOpen(core, what);
      requireWellFormed(request, `${what} request`);
      requireAdminToken(deps.adminToken, bearer(call.metadata));
      return fn(request);
    }, options);
  }

  async function privacyOf(runId: string): Promise<PrivacyView | undefined> {
    const ctx = await runs.context(runId);
    if (!ctx.plan) return undefined;
    const budget = (await refreshBudget(core, ctx))!;
    const spent = await core.ledger.spent(runId);
    return { epsilonSpent: spent.epsilon, epsilonBudget: budget.epsilon, delta: budget.delta };
  }

  async function viewRun(runId: string) {
    const run = await store.runs.get(runId);
    if (!run) throw new InvalidRequestError(`run ${runId} does not exist`);
    return runView(run, await privacyOf(runId).catch(() => undefined));
  }

  async function createRun(request: CreateRunRequest) {
    return viewRun(await createRunFromConfig(deps, runSpecToConfigJson(request.spec, request.extraJson)));
  }

  async function raiseBudget(request: RaiseBudgetRequest) {
    const ctx = await runs.context(request.runId);
    if (!ctx.plan) throw new RunStateError(`run ${ctx.id} has no privacy budget to raise (its config has no privacy section)`);
    const current = (await refreshBudget(core, ctx))!; // another coordinator may have raised it
    if (!(request.epsilonBudget > current.epsilon) || !Number.isFinite(request.epsilonBudget)) {
      throw new RunStateError(`the budget of run ${ctx.id} is ε=${current.epsilon}; RaiseBudget only raises it (got ${request.epsilonBudget})`);
    }
    if (request.reason.trim() === '') throw new InvalidRequestError('reason is required: budget changes are audited');
    await store.budgets.set(ctx.id, { epsilon: request.epsilonBudget, delta: current.delta }, { actor: 'admin', reason: request.reason });
    core.ledger.setBudget(ctx.id, { epsilon: request.epsilonBudget, delta: current.delta });
    core.config.log(`run ${ctx.id}: privacy budget raised from ε=${current.epsilon} to ε=${request.epsilonBudget} by admin: ${request.reason}`);
    const message = `budget raised to ε=${request.epsilonBudget}`;
    if (await store.runs.transition(ctx.id, 'budget_exhausted', 'running', { message })) runs.kick(ctx.id);
    return viewRun(ctx.id);
  }

  return {
    CreateJoinToken: admin('create a join token', async (r) => {
      if (!(r.ttlSeconds > 0) || !(r.uses > 0)) throw new InvalidRequestError('ttl_seconds and uses must both be > 0');
      const grant = await issueJoinToken(store, { ttlMs: r.ttlSeconds * 1000, uses: r.uses, nowMs: core.config.clock() });
      core.config.log(`join token issued: ${r.uses} use(s), expires ${new Date(grant.expiresAt).toISOString()}${r.note ? ` (${r.note})` : ''}`);
      return { token: grant.token, expiresAtMs: grant.expiresAt, usesLeft: grant.uses, note: r.note };
    }),
    ListClients: admin('list clients', async (r) => {
      const all = await store.clients.list({ includeRevoked: r.includeRevoked });
      const { items, next } = page(all, r.pageSize, r.pageToken);
      return { clients: items.map((c) => clientView(c, core.presence.lastSeenMs(c.id), core.presence.isOnline(c.id))), nextPageToken: next };
    }),
    RevokeClient: admin('revoke a client', async (r) => {
      if (r.clientId === '') throw new InvalidRequestError('client_id is required');
      await store.clients.revoke(r.clientId);
      core.presence.forget(r.clientId);
      await runs.abandonTasks(r.clientId, `client revoked${r.reason ? `: ${r.reason}` : ''}`);
      core.config.log(`client ${r.clientId} revoked${r.reason ? `: ${r.reason}` : ''}`);
      const client = (await store.clients.get(r.clientId))!;
      return { ...clientView(client, core.presence.lastSeenMs(client.id), false), revokeReason: r.reason };
    }),
    CreateRun: admin('create a run', createRun),
    ListRuns: admin('list runs', async (r) => {
      const all = (await store.runs.list()).sort((a, b) => b.createdAt - a.createdAt);
      const { items, next } = page(all, r.pageSize, r.pageToken);
      return { runs: await Promise.all(items.map(async (run) => runView(run, await privacyOf(run.id).catch(() => undefined)))), nextPageToken: next };
    }),
    GetRun: admin('get a run', async (r) => viewRun(r.runId)),
    ListRounds: admin('list rounds', async (r) => {
      const all = (await store.rounds.list(r.runId)).reverse();
      const { items, next } = page(all, r.pageSize, r.pageToken);
      return { rounds: items.map(roundView), nextPageToken: next };
    }),
    Status: admin('report status', async () => {
      const clients = await store.clients.list({ includeRevoked: true });
      const allRuns = await store.runs.list();
      return {
        coordinatorId: core.coordinatorId,
        version: LETHE_VERSION,
        startedAtMs: core.startedAt,
        serverTimeMs: core.config.clock(),
        clientsEnrolled: clients.filter((c) => c.revokedAt === null).length,
        clientsOnline: clients.filter((c) => c.revokedAt === null && core.presence.isOnline(c.id)).length,
        clientsRevoked: clients.filter((c) => c.revokedAt !== null).length,
        runsActive: allRuns.filter((r) => r.state === 'pending' || r.state === 'running').length,
        runsTotal: allRuns.length,
        unlearningPending: (await store.unlearning.list({ states: ['queued', 'assigned', 'training', 'verifying'] })).length,
      };
    }),
    RaiseBudget: admin('raise a budget', raiseBudget),
    SubmitUnlearning: admin('submit unlearning', (r) => submitUnlearning(core, r)),
    GetUnlearning: admin('get unlearning', (r) => getUnlearning(core, r.requestId)),
    ListUnlearning: admin('list unlearning', (r) => listUnlearning(core, r)),
  };
}

/** InferenceService.Predict; with `adminToken` set, callers must present it like admin calls (inference.proto). */
export function inferenceHandlers(core: CoordinatorCore, runs: RunRegistry, models: ModelService, adminToken: string | undefined): InferenceHandlers {
  return {
    Predict: unaryHandler(async (request, call) => {
      guardOpen(core, 'predict');
      requireWellFormed(request, 'PredictRequest');
      if (adminToken !== undefined) requireAdminToken(adminToken, bearer(call.metadata));
      return models.predict(runs, request);
    }, handlerOptions(core)),
  };
}
