/**
 * Host tensors: plain Float32Array data with a shape, the currency between the model (tfjs tensors), the wire codec,
 * aggregation and storage. Nothing here touches tfjs, so aggregation and privacy math stay pure and backend-free.
 */

/** A dense float32 tensor in host memory, row-major. `data.length` equals the product of `shape`. */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Named tensors in a stable order (insertion order): an adapter, an update, a checkpoint. */
export type TensorMap = ReadonlyMap<string, HostTensor>;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function hostTensor(shape: readonly number[], data: Float32Array = new Float32Array(sizeOf(shape))): HostTensor {
  if (data.length !== sizeOf(shape)) {
    throw new RangeError(`tensor data has ${data.length} values but shape [${shape.join(', ')}] needs ${sizeOf(shape)}`);
  }
  return { shape: [...shape], data };
}

/** Total number of scalars across all tensors. */
export function numel(tensors: TensorMap): number {
  let n = 0;
  for (const t of tensors.values()) n += t.data.length;
  return n;
}

/** L2 norm of all tensors flattened together (the "update norm" DP clips). Accumulates in float64. */
export function globalNorm(tensors: TensorMap): number {
  let s = 0;
  for (const t of tensors.values()) {
    const d = t.data;
    for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  }
  return Math.sqrt(s);
}

/** A deep copy, so callers can mutate the result without touching the original. */
export function cloneTensors(tensors: TensorMap): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of tensors) out.set(name, { shape: [...t.shape], data: t.data.slice() });
  return out;
}

/** True when both maps have the same names in the same order with the same shapes. */
export function sameLayout(a: TensorMap, b: TensorMap): boolean {
  if (a.size !== b.size) return false;
  const bi = b.entries();
  for (const [name, t] of a) {
    const next = bi.next();
    if (next.done) return false;
    const [bn, bt] = next.value;
    if (bn !== name || bt.shape.length !== t.shape.length || bt.shape.some((d, i) => d !== t.shape[i])) return false;
  }
  return true;
}

/** ‖a − b‖ over all tensors (e.g. how far a step moved an adapter), without materialising the difference. Layouts must match. */
export function distance(a: TensorMap, b: TensorMap): number {
  if (!sameLayout(a, b)) throw new RangeError('cannot compare tensor maps with different names or shapes');
  let s = 0;
  for (const [name, t] of a) {
    const o = b.get(name)!.data;
    for (let i = 0; i < t.data.length; i++) {
      const d = t.data[i]! - o[i]!;
      s += d * d;
    }
  }
  return Math.sqrt(s);
}

/** Names of tensors holding a non-finite value; empty when all are finite. */
export function nonFiniteTensors(tensors: TensorMap): string[] {
  const bad: string[] = [];
  for (const [name, t] of tensors) {
    if (!t.data.every(Number.isFinite)) bad.push(name);
  }
  return bad;
}
