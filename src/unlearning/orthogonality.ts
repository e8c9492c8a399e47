/**
 * Orthogonality between unlearning adapters (O3, "Practical Unlearning for LLMs" 2024, §3.2; ALGORITHMS.md §6).
 *
 * Request t's down-projections A_t [r, d_in] should have row spaces orthogonal to every earlier request's A_i, so that
 * the adapters act on disjoint input subspaces and one request's adapter does not undo another's. The measure is the
 * normalised overlap ‖A_i A_tᵀ‖_F / (‖A_i‖_F ‖A_t‖_F) ∈ [0, 1]: 0 for orthogonal row spaces, 1 for equal rank-1 ones.
 * Independent Gaussian A's overlap by about 1/√d_in (0.088 at d_in = 128), so orthogonality is not free at small width.
 * Pure host math, float64 accumulation.
 */
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { UnlearningError } from './errors.js';

/** ‖X‖_F of a row-major block. */
function frobenius(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

/** ‖A Bᵀ‖_F for A [ra, d], B [rb, d]. */
function crossNorm(a: Float32Array, ra: number, b: Float32Array, rb: number, d: number): number {
  let s = 0;
  for (let i = 0; i < ra; i++) {
    for (let j = 0; j < rb; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += a[i * d + k]! * b[j * d + k]!;
      s += dot * dot;
    }
  }
  return Math.sqrt(s);
}

/** ‖A_i A_jᵀ‖_F / (‖A_i‖_F ‖A_j‖_F) for two A matrices [r_i, d] and [r_j, d] (0 when either is all zeros). */
export function overlapRatio(ai: HostTensor, aj: HostTensor): number {
  const d = ai.shape[1]!;
  if (aj.shape[1] !== d) throw new UnlearningError(`A matrices of widths ${d} and ${aj.shape[1]} cannot be compared`, 'bad_adapter');
  const denominator = frobenius(ai.data) * frobenius(aj.data);
  if (denominator === 0) return 0;
  return crossNorm(ai.data, ai.shape[0]!, aj.data, aj.shape[0]!, d) / denominator;
}

/** The names of an adapter's down-projections, in adapter order. */
export function loraANames(adapter: TensorMap): string[] {
  return [...adapter.keys()].filter((n) => n.endsWith('.lora_A.weight'));
}

export interface OverlapReport {
  readonly ratio: number; // the largest normalised overlap found (0 with no earlier adapters)
  readonly tensor: string; // where: the lora_A name ('' when none)
  readonly prior: number; // index into `priors` of the adapter it overlaps most (−1 when none)
}

/** The worst overlap between `adapter`'s A matrices and those of each earlier adapter, per projection. */
export function maxOverlap(adapter: TensorMap, priors: readonly TensorMap[]): OverlapReport {
  let worst: OverlapReport = { ratio: 0, tensor: '', prior: -1 };
  for (const name of loraANames(adapter)) {
    priors.forEach((prior, p) => {
      const other = prior.get(name);
      if (!other) throw new UnlearningError(`earlier unlearning adapter ${p} lacks ${name}; all requests must share one LoRA layout`, 'bad_adapter');
      const ratio = overlapRatio(adapter.get(name)!, other);
      if (ratio > worst.ratio) worst = { ratio, tensor: name, prior: p };
    });
  }
  return worst;
}

/** Gram–Schmidt state: orthonormal rows (float64) of dimension d, grown one row at a time. */
class Basis {
  readonly rows: Float64Array[] = [];
  constructor(readonly d: number) {}

  /** Removes `row`'s components along the basis (modified Gram–Schmidt), normalises and adds it; false if ~0. */
  add(row: Float64Array): boolean {
    const d = this.d;
    for (const q of this.rows) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += row[k]! * q[k]!;
      for (let k = 0; k < d; k++) row[k]! -= dot * q[k]!;
    }
    let norm = 0;
    for (let k = 0; k < d; k++) norm += row[k]! * row[k]!;
    norm = Math.sqrt(norm);
    if (norm < 1e-9) return false;
    for (let k = 0; k < d; k++) row[k]! /= norm;
    this.rows.push(row);
    return true;
  }

  addAll(a: HostTensor): void {
    for (let i = 0; i < a.shape[0]!; i++) this.add(Float64Array.from(a.data.subarray(i * this.d, (i + 1) * this.d)));
  }
}

/** An orthonormal basis Q [k, d] of the row spaces of `earlier` (A matrices [r_i, d]); k = 0 gives shape [0, d]. */
export function rowSpaceBasis(earlier: readonly HostTensor[], d: number): HostTensor {
  const basis = new Basis(d);
  for (const a of earlier) basis.addAll(a);
  const out = new Float32Array(basis.rows.length * d);
  basis.rows.forEach((q, i) => out.set(q, i * d));
  return { shape: [basis.rows.length, d], data: out };
}

/**
 * `fresh` [r, d] with every row's component in the span of the earlier A's rows removed (modified Gram–Schmidt), then
 * rescaled to its original norm, so a new request starts exactly orthogonal to all earlier ones at the usual scale.
 * Rows are also made orthogonal to each other, so they stay independent. Throws no_room when the earlier rows leave
 * no orthogonal direction for some row.
 */
export function orthogonalize(fresh: HostTensor, earlier: readonly HostTensor[], name: string): HostTensor {
  const [r, d] = fresh.shape as [number, number];
  const basis = new Basis(d);
  for (const a of earlier) basis.addAll(a);
  const priorRank = basis.rows.length;
  const out = new Float32Array(r * d);
  for (let i = 0; i < r; i++) {
    const src = fresh.data.subarray(i * d, (i + 1) * d);
    const row = Float64Array.from(src);
    if (!basis.add(row)) {
      throw new UnlearningError(
        `${name}: the ${priorRank} rows of earlier unlearning adapters leave no room in its ${d}-dimensional input for rank ${r}; ` +
          'lower the rank r or merge earlier requests',
        'no_room',
      );
    }
    const scale = frobenius(src);
    for (let k = 0; k < d; k++) out[i * d + k] = row[k]! * scale;
  }
  return { shape: [r, d], data: out };
}
