/**
 * O3 unlearning on the coordinator (ALGORITHMS.md §6) after a client uploaded a package: verification, activation, and
 * serving through inference.ts's GateProvider.
 *
 * verifying: the package is decoded against the run's base geometry and the adapters of the run's earlier active
 * requests (orthogonality). A PackageError fails the request with its code as the reason; otherwise the blob is stored
 * and the request becomes active — nothing is served before both happened, so a rejected package is never half-active.
 */
import type * as tf from '@tensorflow/tfjs';
import type { GPT2, GPT2Config } from '../model/gpt2.js';
import type { LoraParams } from '../model/lora.js';
import type { UnlearningRequestRecord } from '../store/store.js';
import type { TensorMap } from '../tensors/host.js';
import { PackageError, UnlearningServing, decodeUnlearningPackage, type ServedRequest, type UnlearningPackage } from '../unlearning/index.js';
import type { GateWeight } from '../wire/admin-messages.js';
import type { CoordinatorCore } from './core.js';
import { NotFoundError } from './errors.js';
import type { GateProvider } from './inference.js';
import type { RunContext } from './runs.js';

/** The run's active requests, in index order, each with its decoded package. */
export async function activePackages(core: CoordinatorCore, runId: string, model: GPT2Config, before = Infinity): Promise<{ record: UnlearningRequestRecord; pkg: UnlearningPackage }[]> {
  const active = (await core.store.unlearning.list({ runId, states: ['active'] })).filter((r) => r.index < before).sort((a, b) => a.index - b.index);
  const out: { record: UnlearningRequestRecord; pkg: UnlearningPackage }[] = [];
  for (const record of active) {
    const bytes = await core.store.blobs.get(record.resultAdapterSha!);
    if (!bytes) throw new NotFoundError(`unlearning package ${record.resultAdapterSha} of request ${record.id} is not stored`);
    out.push({ record, pkg: decodeUnlearningPackage(bytes, { model }) });
  }
  return out;
}

/**
 * verifying → active | failed for `record` (which must be in state verifying) with the uploaded package bytes.
 * Returns the final state. Other failures (store I/O) propagate and leave the request verifying for a retry.
 */
export async function verifyAndActivate(core: CoordinatorCore, record: UnlearningRequestRecord, bytes: Uint8Array, model: GPT2Config): Promise<'active' | 'failed'> {
  const priors: TensorMap[] = (await activePackages(core, record.runId, model, record.index)).map((p) => p.pkg.adapter);
  let pkg: UnlearningPackage;
  try {
    pkg = decodeUnlearningPackage(bytes, { model, priors });
  } catch (err) {
    if (!(err instanceof PackageError)) throw err;
    await core.store.unlearning.transition(record.id, 'verifying', 'failed', { failureReason: `${err.code}: ${err.message}`.slice(0, 512) });
    core.config.log(`unlearning ${record.id} rejected: ${err.code}: ${err.message}`);
    return 'failed';
  }
  const { sha256 } = await core.store.blobs.put(bytes);
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(pkg.metrics)) if (Number.isFinite(v)) metrics[k] = v;
  await core.store.unlearning.transition(record.id, 'verifying', 'active', { resultAdapterSha: sha256, metrics });
  core.config.log(`unlearning ${record.id} (#${record.index}) of run ${record.runId} is active`);
  return 'active';
}

/** One UnlearningServing per run, rebuilt when the run's set of active requests changed. */
export class UnlearningGates implements GateProvider {
  private readonly served = new Map<string, { key: string; serving: UnlearningServing }>();

  constructor(private readonly core: CoordinatorCore) {}

  async prepare(ctx: RunContext, model: GPT2, utility: TensorMap): Promise<void> {
    // The key is read on every Predict; the packages are decoded only when it changed.
    const ids = (await this.core.store.unlearning.list({ runId: ctx.id, states: ['active'] })).sort((a, b) => a.index - b.index).map((r) => r.id);
    const key = ids.join(',');
    const current = this.served.get(ctx.id);
    if (current?.key === key) return;
    if (ids.length === 0) {
      current?.serving.dispose();
      this.served.delete(ctx.id);
      return;
    }
    const active = await activePackages(this.core, ctx.id, ctx.layout.model);
    const builtKey = active.map((a) => a.record.id).join(',');
    // A concurrent Predict may have rebuilt it meanwhile. Replacing is safe: predict() calls gates() right after
    // prepare() with no await in between, so no caller holds the old serving across this point.
    const now = this.served.get(ctx.id);
    if (now?.key === builtKey) return;
    now?.serving.dispose();
    const requests: ServedRequest[] = active.map(({ record, pkg }) => ({ id: record.id, lora: pkg.lora, adapter: pkg.adapter, detector: pkg.detector, gate: pkg.gate }));
    // The utility adapter only lends its head config here: gates() and adapters() below never apply it.
    this.served.set(ctx.id, { key: builtKey, serving: new UnlearningServing(model, { lora: ctx.layout.lora, adapter: utility }, requests) });
  }

  gates(ctx: RunContext, ids: tf.Tensor2D, mask: tf.Tensor2D): { adapters: readonly LoraParams[]; explain: GateWeight[] } {
    const served = this.served.get(ctx.id);
    if (!served) return { adapters: [], explain: [] };
    const { scores, gates } = served.serving.gates(ids, mask);
    const b = ids.shape[0];
    const all = served.serving.adapters(gates, b) as readonly LoraParams[]; // the utility adapter first, then the gated ones
    // Explanations are per input; Predict classifies one.
    const explain = b === 1 ? served.serving.requestIds.map((requestId, t) => ({ requestId, weight: gates[t]!, score: scores[t]! })) : [];
    return { adapters: all.slice(1), explain };
  }

  dispose(): void {
    for (const s of this.served.values()) s.serving.dispose();
    this.served.clear();
  }
}
