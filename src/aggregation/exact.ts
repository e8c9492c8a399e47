/**
 * `exact` LoRA aggregation (ALGORITHMS.md §1): clients train and send both factors; per adapted module the coordinator
 * forms the weighted average of the clients' products and re-factors it to rank r by truncated SVD.
 *
 *   A_k = A_g + ΔA_k (r × d_in),  B_k = B_g + ΔB_k (d_out × r)
 *   ΔW  = Σ_k w_k (α/r) B_k A_k                                   (d_out × d_in; Σ w_k = 1)
 *   ΔW ≈ U_r S_r V_rᵀ (best rank-r approximation, Eckart–Young)  →  B = U_r S_r^½,  A = S_r^½ V_rᵀ
 *
 * The α/r scale appears on both sides ((α/r)·B·A must equal the truncation of (α/r)·Σ w_k B_k A_k), so it cancels and
 * the factors are those of M = Σ_k w_k B_k A_k; α only scales the reported ΔW norm. When M has rank ≤ r the result
 * reproduces the average of the products exactly; otherwise it is the best rank-r approximation.
 *
 * Cost: M is never formed. M = [w_1 B_1 … w_K B_K] · [A_1; …; A_K], a product of a d_out × Kr and a Kr × d_in
 * factor, so lowRankSvd needs two Householder QRs, O((d_out + d_in)·(Kr)²), and a Jacobi SVD of the Kr × Kr core,
 * O((Kr)³) per sweep, instead of an SVD of the dense d_out × d_in matrix. When Kr exceeds d_out or d_in the core is
 * capped at min(d_out, d_in, Kr). Measured on GPT-2 small (48 modules, r = 8, K = 10 so Kr = 80): about 7 s per round
 * on a busy 2-core machine, against ~50 ms for `ffa`. The Jacobi term dominates once Kr reaches a few hundred, so
 * large cohorts should use `ffa`.
 *
 * Directions with (numerically) zero singular value would get a zero row in A and a zero column in B; with both
 * factors zero, LoRA's gradient in that direction is zero forever. For s_j ≤ s_1·2⁻²⁴ (below float32 resolution of the
 * result) we therefore set B's column to 0 and A's row to the unit vector V_j: the product is unchanged and the
 * direction can still train, like a fresh LoRA init (B = 0, A ≠ 0).
 *
 * Other tensors (the head score.weight) are averaged linearly: global + Σ w_k delta_k.
 */
import { lowRankSvd } from '../linalg/svd.js';
import { hostTensor, type HostTensor, type TensorMap } from '../tensors/host.js';
import { applyWeightedSum, firstNonFinite } from './aggregate.js';
import { AdapterLayoutError, StrategyConfigError } from './errors.js';
import type { AggregateOutcome, AggregationStrategy, ClientFailure, ClientUpdate, RoundContext } from './strategy.js';
import {
  checkFiniteAggregate,
  checkUpdateLayout,
  isLoraA,
  isLoraB,
  loraModule,
  rejectNonFinite,
  resolveRoundOptions,
  roundWeights,
  travellingTensors,
  type RoundOptions,
} from './updates.js';

export interface ExactOptions extends RoundOptions {
  /** LoRA scale numerator α (ΔW = (α/r)·B·A); no default: must match the model's adapter config. */
  readonly alpha: number;
  /** LoRA rank r, the rank the aggregate is truncated to; must match the adapter's shapes. */
  readonly r: number;
}

/** Relative size below which a singular direction is treated as zero (float32 unit roundoff). */
const ZERO_DIRECTION = 2 ** -24;

export class ExactStrategy implements AggregationStrategy {
  readonly name = 'exact';
  readonly options: ExactOptions;

  constructor(options: Partial<RoundOptions> & { alpha: number; r: number }) {
    const { alpha, r } = options;
    if (!Number.isFinite(alpha) || alpha <= 0) throw new StrategyConfigError(`alpha must be a finite number > 0, got ${alpha}`);
    if (!Number.isInteger(r) || r < 1) throw new StrategyConfigError(`r must be an integer ≥ 1, got ${r}`);
    this.options = Object.freeze({ ...resolveRoundOptions(options), alpha, r });
  }

  configureRound(): Record<string, never> {
    return {};
  }

  aggregate(ctx: RoundContext, results: readonly ClientUpdate[], failures: readonly ClientFailure[]): AggregateOutcome | undefined {
    if (results.length < this.options.minClients) return undefined; // minClients ≥ 1 covers an empty round
    const names = travellingTensors('exact', ctx.global.keys());
    for (const u of results) checkUpdateLayout(ctx.global, names, u);
    const weights = roundWeights(results, this.options.weighting);
    const modules = this.pairModules(ctx.global);

    const linearNames = names.filter((n) => loraModule(n) === undefined);
    const { global, squaredNorms } = applyWeightedSum(
      ctx.global,
      results.map((u) => u.delta),
      weights,
      linearNames,
      ctx.allocate,
    );
    checkFiniteAggregate(results, squaredNorms);

    let energy = 0; // Σ s² over all modules, of M = Σ w_k B_k A_k
    let tail = 0; // the part dropped by truncation
    for (const m of modules) {
      const f = this.refactor(ctx.global, m, results, weights);
      // Into the tensors' places in the new adapter's one buffer, which is then stored as it lies.
      global.get(m.a)!.data.set(f.a.data);
      global.get(m.b)!.data.set(f.b.data);
      energy += f.energy;
      tail += f.tail;
    }
    const scale = this.options.alpha / this.options.r;
    return {
      global,
      metrics: {
        clients: results.length,
        failures: failures.length,
        delta_w_norm: scale * Math.sqrt(energy),
        truncation_rel_err: energy > 0 ? Math.sqrt(tail / energy) : 0,
      },
    };
  }

  /** The lora_A/lora_B name pairs of the global adapter, each checked against r. */
  private pairModules(global: TensorMap): { a: string; b: string; dOut: number; dIn: number }[] {
    const { r } = this.options;
    const out: { a: string; b: string; dOut: number; dIn: number }[] = [];
    for (const name of global.keys()) {
      if (!isLoraA(name) && !isLoraB(name)) continue;
      const base = loraModule(name)!;
      const a = `${base}.lora_A.weight`;
      const b = `${base}.lora_B.weight`;
      const ta = global.get(a);
      const tb = global.get(b);
      if (ta === undefined || tb === undefined) {
        throw new AdapterLayoutError(`the global adapter has ${name} but not its partner ${ta ? b : a}`, 'unpaired_factor');
      }
      if (!isLoraA(name)) continue; // each pair once, at its A
      const [ra, dIn] = ta.shape;
      const [dOut, rb] = tb.shape;
      if (ta.shape.length !== 2 || tb.shape.length !== 2 || ra !== r || rb !== r) {
        throw new AdapterLayoutError(
          `${base} has lora_A [${ta.shape.join(', ')}] and lora_B [${tb.shape.join(', ')}], expected [${r}, d_in] and ` +
            `[d_out, ${r}] for the configured rank r = ${r}`,
          'rank_mismatch',
        );
      }
      if (r > Math.min(dOut!, dIn!)) {
        throw new AdapterLayoutError(`${base}: rank r = ${r} exceeds min(d_out, d_in) = ${Math.min(dOut!, dIn!)}`, 'rank_mismatch');
      }
      out.push({ a, b, dOut: dOut!, dIn: dIn! });
    }
    return out;
  }

  /** Truncated SVD of Σ_k w_k B_k A_k for one module, split into balanced factors. */
  private refactor(
    global: TensorMap,
    m: { a: string; b: string; dOut: number; dIn: number },
    results: readonly ClientUpdate[],
    weights: readonly number[],
  ): { a: HostTensor; b: HostTensor; energy: number; tail: number } {
    const { r } = this.options;
    const { dOut, dIn } = m;
    const kr = results.length * r;
    const ag = global.get(m.a)!.data;
    const bg = global.get(m.b)!.data;
    const bs = new Float64Array(dOut * kr); // [w_1 B_1 … w_K B_K], dOut × Kr row-major
    const as = new Float64Array(kr * dIn); // [A_1; …; A_K], Kr × dIn row-major
    results.forEach((u, k) => {
      const w = weights[k]!;
      const db = u.delta.get(m.b)!.data;
      const da = u.delta.get(m.a)!.data;
      for (let i = 0; i < dOut; i++) {
        for (let j = 0; j < r; j++) bs[i * kr + k * r + j] = w * (bg[i * r + j]! + db[i * r + j]!);
      }
      const off = k * r * dIn;
      for (let i = 0; i < r * dIn; i++) as[off + i] = ag[i]! + da[i]!;
    });
    if (firstNonFinite(bs) >= 0 || firstNonFinite(as) >= 0) rejectNonFinite(results, [m.a, m.b]);

    const top = lowRankSvd(bs, as, dOut, kr, dIn, r);
    let tail = 0;
    for (const s of top.tail) tail += s * s;
    let energy = tail;
    for (const s of top.s) energy += s * s;

    const b = new Float32Array(dOut * r);
    const a = new Float32Array(r * dIn);
    const s0 = top.s[0]!;
    for (let j = 0; j < r; j++) {
      const s = top.s[j]!;
      const dead = !(s > s0 * ZERO_DIRECTION);
      const root = Math.sqrt(s);
      for (let i = 0; i < dOut; i++) b[i * r + j] = dead ? 0 : top.u.data[i * r + j]! * root;
      for (let l = 0; l < dIn; l++) a[j * dIn + l] = top.v.data[l * r + j]! * (dead ? 1 : root);
    }
    return { a: hostTensor([r, dIn], a), b: hostTensor([dOut, r], b), energy, tail };
  }
}
