/**
 * What travels and what a valid round looks like: tensor roles by name, the travelling set per strategy kind, layout
 * checks on client updates, round options and weights. Shared by every strategy so that they reject bad input the
 * same way.
 */
import type { TensorMap } from '../tensors/host.js';
import { equalWeights, exampleWeights, firstNonFinite } from './aggregate.js';
import { RoundRejectedError, StrategyConfigError, UpdateRejectedError } from './errors.js';
import type { ClientUpdate } from './strategy.js';

export type StrategyKind = 'ffa' | 'exact' | 'fedavg';
export const STRATEGY_KINDS: readonly StrategyKind[] = Object.freeze(['ffa', 'exact', 'fedavg']);

/** How client updates are weighted: by example count n_k/Σn (FedAvg), or equally (under DP). */
export type Weighting = 'examples' | 'equal';

/** Options every strategy shares. */
export interface RoundOptions {
  /** Fewer successful updates than this and aggregate() keeps the old global adapter. Default 1. */
  readonly minClients: number;
  /** Default 'examples'; DP wrappers use 'equal' so no client's weight depends on its data. */
  readonly weighting: Weighting;
}

export function resolveRoundOptions(options: Partial<RoundOptions> = {}): RoundOptions {
  const minClients = options.minClients ?? 1;
  const weighting = options.weighting ?? 'examples';
  if (!Number.isInteger(minClients) || minClients < 1) {
    throw new StrategyConfigError(`minClients must be an integer ≥ 1, got ${minClients}`);
  }
  if (weighting !== 'examples' && weighting !== 'equal') {
    throw new StrategyConfigError(`weighting must be 'examples' or 'equal', got ${String(weighting)}`);
  }
  return Object.freeze({ minClients, weighting });
}

const LORA_A = /\.lora_A\.weight$/;
const LORA_B = /\.lora_B\.weight$/;

export function isLoraA(name: string): boolean {
  return LORA_A.test(name);
}

export function isLoraB(name: string): boolean {
  return LORA_B.test(name);
}

/** `h.3.attn.c_attn.lora_A.weight` → `h.3.attn.c_attn`; undefined for tensors that are not LoRA factors. */
export function loraModule(name: string): string | undefined {
  const m = /^(.*)\.lora_[AB]\.weight$/.exec(name);
  return m?.[1];
}

/**
 * The tensors clients upload for a strategy kind, in the order of `names`. `ffa` freezes every lora_A at its seeded
 * init, so everything else travels (lora_B and the head score.weight); `exact` and `fedavg` move all tensors.
 */
export function travellingTensors(kind: StrategyKind, names: Iterable<string>): string[] {
  const all = [...names];
  switch (kind) {
    case 'ffa':
      return all.filter((n) => !isLoraA(n));
    case 'exact':
    case 'fedavg':
      return all;
    default:
      throw new StrategyConfigError(`unknown strategy kind ${String(kind)}; expected one of ${STRATEGY_KINDS.join(', ')}`);
  }
}

/**
 * Checks that an update carries exactly the travelling tensors with the global adapter's shapes. Throws
 * UpdateRejectedError naming the client and tensor. Values are not scanned here (that costs a pass over every
 * update); strategies check the aggregate instead and call findNonFinite only when it is bad.
 */
export function checkUpdateLayout(global: TensorMap, travelling: readonly string[], update: ClientUpdate): void {
  const id = update.clientId;
  for (const name of travelling) {
    const t = update.delta.get(name);
    const g = global.get(name)!;
    if (t === undefined) {
      throw new UpdateRejectedError(`update from client ${id} lacks tensor ${name}, which this strategy aggregates`, 'missing_tensor', id, name);
    }
    if (t.shape.length !== g.shape.length || t.shape.some((d, i) => d !== g.shape[i]) || t.data.length !== g.data.length) {
      throw new UpdateRejectedError(
        `update from client ${id} has ${name} of shape [${t.shape.join(', ')}], but the global adapter's is ` +
          `[${g.shape.join(', ')}]`,
        'shape_mismatch',
        id,
        name,
      );
    }
  }
  if (update.delta.size === travelling.length) return;
  const expected = new Set(travelling);
  for (const name of update.delta.keys()) {
    if (expected.has(name)) continue;
    if (global.has(name)) {
      throw new UpdateRejectedError(
        `update from client ${id} carries ${name}, which is frozen under this strategy and must not travel ` +
          `(FFA-LoRA keeps every lora_A at its seeded init)`,
        'frozen_tensor',
        id,
        name,
      );
    }
    throw new UpdateRejectedError(`update from client ${id} carries ${name}, which the global adapter has no tensor for`, 'unexpected_tensor', id, name);
  }
}

/** Round weights under the chosen weighting; they sum to 1. */
export function roundWeights(results: readonly ClientUpdate[], weighting: Weighting): number[] {
  return weighting === 'equal'
    ? equalWeights(results.length)
    : exampleWeights(
        results.map((r) => r.numExamples),
        results.map((r) => r.clientId),
      );
}

/** Throws UpdateRejectedError for the first update holding NaN or ±Infinity in one of `names`, if any. */
export function rejectNonFinite(results: readonly ClientUpdate[], names: readonly string[]): void {
  for (const r of results) {
    for (const name of names) {
      const t = r.delta.get(name);
      if (t !== undefined && firstNonFinite(t.data) >= 0) {
        throw new UpdateRejectedError(`update from client ${r.clientId} holds NaN or ±Infinity in ${name}`, 'non_finite', r.clientId, name);
      }
    }
  }
}

/**
 * Checks an aggregate by ‖what each tensor added‖² (applyWeightedSum): one that is not finite means NaN/±Infinity in
 * that tensor. Blames the first client update holding one there (UpdateRejectedError), otherwise the weighted sum
 * itself overflowed (RoundRejectedError).
 */
export function checkFiniteAggregate(results: readonly ClientUpdate[], squaredNorms: ReadonlyMap<string, number>): void {
  for (const [name, squares] of squaredNorms) {
    if (Number.isFinite(squares)) continue;
    rejectNonFinite(results, [name]);
    throw new RoundRejectedError(`the weighted sum of ${name} overflowed float32 although every update is finite`, 'non_finite_aggregate');
  }
}
