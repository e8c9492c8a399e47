/**
 * Federated ESSA (ALGORITHMS.md §5) over a global adapter that other clients move too.
 *
 * The coordinator holds the ESSA state (essa.ts EssaState): per adapted projection the frozen factors U [dOut, k] and
 * P [k, r] (B(s) = U diag(s) P, so ΔW = B(s)·A keeps the frozen A), the searched indices, the singular values s and
 * Adam's moments. Clients receive only the *basis* (U, P and the searched indices; this file) and perturb the global
 * adapter additively:
 *
 *   member(seed, ±) = global with every lora_B replaced by B_global ± σ·U diag(ε) P,   ε = z(seed) on the searched
 *   entries (zero elsewhere),
 *
 * which needs neither s nor the moments. When the global adapter is ESSA's alone (B_global = U diag(s) P), this is
 * exactly essa.ts's member s ± σε. When backprop or MeZO clients moved B as well, the additive form is still a
 * well-defined antithetic search around the current adapter, and the coordinator turns the generation's step into a
 * dense delta of lora_B, B(s' − s) = U diag(s' − s) P, that aggregates with the other clients' deltas.
 *
 * Basis tensors (float32, lossless: indices < 2^24): `essa.<module>.u` [dOut, k], `essa.<module>.p` [k, r] per module
 * in zOrder of the module name, then `essa.active` [A]; k = min(dOut, r, dIn) (lowRankSvd of B·A).
 */
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { essaAdapter, essaUpdate, type EssaConfig, type EssaFactor, type EssaRecord, type EssaState, type Fitness } from './essa.js';
import { TrainError } from './errors.js';
import { normals, zOrder } from './perturb.js';

/** What a client needs to evaluate population members: the frozen factors and the searched indices. */
export interface EssaBasis {
  readonly factors: readonly EssaFactor[]; // in zOrder of module name; offsets into the concatenated s
  readonly active: Int32Array; // indices into s that are searched; ε has this length
}

const LORA_A = '.lora_A.weight';
const LORA_B = '.lora_B.weight';

/** Total singular values Σk of a basis. */
function valueCount(basis: EssaBasis): number {
  const last = basis.factors.at(-1);
  return last ? last.offset + last.k : 0;
}

/** essaAdapter needs only the factors of a state; this is that view of a basis. */
function factorsOnly(basis: EssaBasis): EssaState {
  const none = new Float32Array(0);
  return { factors: basis.factors, s: none, active: basis.active, m: none, v: none, t: 0 };
}

/**
 * Names and shapes of the basis tensors implied by an adapter layout (lora_A [r, dIn], lora_B [dOut, r] per module)
 * and the searched share of each projection's values (essa.ts EssaConfig.topFraction), in payload order.
 */
export function essaBasisShapes(adapter: ReadonlyMap<string, readonly number[]>, topFraction: number): Map<string, number[]> {
  const modules = zOrder([...adapter.keys()].filter((n) => n.endsWith(LORA_A)).map((n) => n.slice(0, -LORA_A.length)));
  if (modules.length === 0) throw new TrainError('ESSA needs an adapter with LoRA factors; none found', 'bad_adapter');
  const out = new Map<string, number[]>();
  let active = 0;
  for (const module of modules) {
    const [r, dIn] = adapter.get(module + LORA_A)! as [number, number];
    const dOut = adapter.get(module + LORA_B)?.[0];
    if (dOut === undefined) throw new TrainError(`"${module}" has lora_A but no lora_B`, 'bad_adapter');
    const k = Math.min(dOut, r, dIn);
    out.set(`essa.${module}.u`, [dOut, k]);
    out.set(`essa.${module}.p`, [k, r]);
    active += Math.ceil(topFraction * k);
  }
  out.set('essa.active', [active]);
  return out;
}

/** The basis tensors of a state (see the module comment). */
export function essaBasisTensors(state: EssaBasis): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const f of state.factors) {
    out.set(`essa.${f.module}.u`, { shape: [f.dOut, f.k], data: f.u });
    out.set(`essa.${f.module}.p`, { shape: [f.k, f.r], data: f.p });
  }
  out.set('essa.active', { shape: [state.active.length], data: Float32Array.from(state.active) });
  return out;
}

/** Inverse of essaBasisTensors; TrainError when the tensors are inconsistent. */
export function essaBasisFromTensors(tensors: TensorMap): EssaBasis {
  const modules = zOrder([...tensors.keys()].filter((n) => /^essa\..+\.u$/.test(n)).map((n) => n.slice(5, -2)));
  const factors: EssaFactor[] = [];
  let offset = 0;
  for (const module of modules) {
    const u = tensors.get(`essa.${module}.u`)!;
    const p = tensors.get(`essa.${module}.p`);
    const [dOut, k] = u.shape as [number, number];
    if (!p || p.shape[0] !== k) throw new TrainError(`ESSA basis for "${module}": u and p disagree on k`, 'bad_adapter');
    factors.push({ module, dOut, k, r: p.shape[1]!, u: u.data, p: p.data, offset });
    offset += k;
  }
  const activeT = tensors.get('essa.active');
  if (!activeT || factors.length === 0) throw new TrainError('an ESSA basis needs essa.<module>.u/.p and essa.active', 'bad_adapter');
  const active = Int32Array.from(activeT.data);
  if (active.some((i) => !(i >= 0 && i < offset))) throw new TrainError('ESSA basis: a searched index is out of range', 'bad_adapter');
  return { factors, active };
}

/** B(ds) = U diag(ds) P for every lora_B of the basis: the change of B when the singular values move by `ds` [Σk]. */
export function basisDelta(basis: EssaBasis, base: TensorMap, ds: ArrayLike<number>): Map<string, HostTensor> {
  const full = essaAdapter(factorsOnly(basis), base, ds);
  return new Map(basis.factors.map((f) => [f.module + LORA_B, full.get(f.module + LORA_B)!]));
}

/** The ± member of pair `seed`: every lora_B of `global` moved by ±σ·U diag(ε) P (see the module comment). */
export function memberAdapter(basis: EssaBasis, global: TensorMap, seed: number, sign: 1 | -1, sigma: number): Map<string, HostTensor> {
  const eps = normals(seed, basis.active.length);
  const ds = new Float64Array(valueCount(basis));
  for (let i = 0; i < eps.length; i++) ds[basis.active[i]!] = sign * sigma * eps[i]!;
  const out = new Map(global);
  for (const [name, d] of basisDelta(basis, global, ds)) {
    const b = global.get(name)!;
    const data = new Float32Array(b.data.length);
    for (let i = 0; i < data.length; i++) data[i] = b.data[i]! + d.data[i]!;
    out.set(name, { shape: [...b.shape], data });
  }
  return out;
}

/** Client side: F(member(seed, +)) and F(member(seed, −)) for each assigned seed, in the order given. */
export function evaluateBasisMembers(
  basis: EssaBasis,
  global: TensorMap,
  seeds: readonly number[],
  fitness: Fitness,
  sigma: number,
): EssaRecord[] {
  return seeds.map((seed) => ({
    seed,
    fPlus: fitness(memberAdapter(basis, global, seed, 1, sigma)),
    fMinus: fitness(memberAdapter(basis, global, seed, -1, sigma)),
  }));
}

/**
 * Coordinator side (pure): one generation from the records that arrived (any order; essaUpdate canonicalises), and
 * the dense lora_B delta B(s' − s) it proposes. No records: the state and a zero delta.
 */
export function essaStep(
  state: EssaState,
  base: TensorMap,
  records: readonly EssaRecord[],
  config: EssaConfig,
): { state: EssaState; delta: Map<string, HostTensor> } {
  const next = essaUpdate(state, records, config);
  const ds = new Float64Array(next.s.length);
  for (let i = 0; i < ds.length; i++) ds[i] = next.s[i]! - state.s[i]!;
  return { state: next, delta: basisDelta(state, base, ds) };
}
