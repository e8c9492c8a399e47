/**
 * Plain averaging functions, after Flower's `aggregate.py`: strategies orchestrate, these do the arithmetic. All take
 * and return float32 host tensors; the weighted sums run in the WebAssembly SIMD kernel of fold-kernel.ts (see there
 * for why the accumulator is float32 and how the loop reaches memory speed).
 */
import { hostTensor, type HostTensor, type TensorMap } from '../tensors/host.js';
import { pageAlignedBuffer } from '../tensors/page-aligned.js';
import { RoundRejectedError, UpdateRejectedError } from './errors.js';
import { FoldKernel } from './fold-kernel.js';

/**
 * FedAvg weights w_k = n_k / Σ n (McMahan et al. 2017, Algorithm 1). Counts must be finite and ≥ 0 with a positive
 * total. `clientIds` name the culprit in errors.
 */
export function exampleWeights(counts: readonly number[], clientIds: readonly string[] = []): number[] {
  let total = 0;
  counts.forEach((n, k) => {
    if (!Number.isFinite(n) || n < 0) {
      const id = clientIds[k] ?? `#${k}`;
      throw new UpdateRejectedError(
        `client ${id} reported ${n} training examples; an example count must be a finite number ≥ 0`,
        'bad_example_count',
        id,
      );
    }
    total += n;
  });
  if (!(total > 0)) {
    throw new RoundRejectedError(
      `the ${counts.length} updates report no training examples in total, so example weights are undefined; ` +
        `use equal weighting or have clients report their example counts`,
      'no_examples',
    );
  }
  return counts.map((n) => n / total);
}

/** w_k = 1/K: every client counts the same (the weighting DP uses, so one client's influence is bounded). */
export function equalWeights(k: number): number[] {
  return Array.from({ length: k }, () => 1 / k);
}

/** out = Σ_k w_k·x_k; `out` defaults to a fresh array and may alias an input. */
export function weightedSum(inputs: readonly Float32Array[], weights: readonly number[], out?: Float32Array): Float32Array {
  const n = out?.length ?? inputs[0]?.length ?? 0;
  if (inputs.length !== weights.length) {
    throw new RangeError(`weightedSum got ${inputs.length} inputs but ${weights.length} weights`);
  }
  for (const x of inputs) {
    if (x.length !== n) throw new RangeError(`weightedSum inputs must all have length ${n}, got ${x.length}`);
  }
  const result = out ?? new Float32Array(n);
  new FoldKernel().weightedSum(inputs, weights, result);
  return result;
}

/** acc += w·delta, in place (one client folded into a running sum). */
export function foldInto(acc: Float32Array, delta: Float32Array, w: number): void {
  weightedSum([acc, delta], [1, w], acc);
}

/**
 * global + Σ_k w_k·delta_k for the named tensors, every other tensor of `global` copied unchanged, in one pass that
 * never materialises the sum. Also returns ‖Σ_k w_k·delta_k‖² of each named tensor (float64: the norm of the update,
 * and a finiteness check, since the squares of float32 values cannot overflow it). The result's tensors lie back to
 * back in one buffer from `allocate`, in `global`'s order: a global adapter in layout order is then already its own blob
 * payload (coordinator/layout.ts packTensors returns a view instead of copying it).
 */
export function applyWeightedSum(
  global: TensorMap,
  deltas: readonly TensorMap[],
  weights: readonly number[],
  names: readonly string[],
  allocate: (bytes: number) => ArrayBufferLike = pageAlignedBuffer,
): { readonly global: Map<string, HostTensor>; readonly squaredNorms: Map<string, number> } {
  const kernel = new FoldKernel();
  const summed = new Set(names);
  const datas = packedArrays([...global.values()].map((t) => t.data.length), allocate);
  const out = new Map<string, HostTensor>();
  const squaredNorms = new Map<string, number>();
  [...global].forEach(([name, t], i) => {
    const data = datas[i]!;
    if (summed.has(name)) {
      squaredNorms.set(name, kernel.addWeightedSum(t.data, deltas.map((d) => d.get(name)!.data), weights, data));
    } else data.set(t.data);
    out.set(name, hostTensor(t.shape, data));
  });
  return { global: out, squaredNorms };
}

/** global + scale·update for the tensors in `update`; every other tensor of `global` is copied unchanged (applyWeightedSum). */
export function applyUpdate(global: TensorMap, update: TensorMap, scale = 1): Map<string, HostTensor> {
  return applyWeightedSum(global, [update], [scale], [...update.keys()]).global;
}

/**
 * Float32Arrays of these lengths, back to back in one new buffer (one allocation instead of one per tensor), page-aligned
 * when large (pageAlignedBuffer), so that a new global adapter is written to disk straight from it.
 */
function packedArrays(lengths: readonly number[], allocate: (bytes: number) => ArrayBufferLike): Float32Array[] {
  const bytes = 4 * lengths.reduce((a, b) => a + b, 0);
  const buffer = allocate(bytes);
  if (buffer.byteLength < bytes) throw new RangeError(`an allocator gave ${buffer.byteLength} bytes where ${bytes} were asked for`);
  let offset = 0;
  return lengths.map((n) => {
    const a = new Float32Array(buffer, offset, n);
    offset += 4 * n;
    return a;
  });
}

/** Index of the first NaN or ±Infinity, or −1. (x − x is 0 for finite x and NaN otherwise.) */
export function firstNonFinite(data: Float32Array | Float64Array): number {
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}
