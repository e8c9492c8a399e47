/**
 * Seeded Gaussian perturbations z(s) for the forward-only trainers (MeZO, ALGORITHMS.md §3; FedKSeed replay, §4;
 * ESSA, §5). z(s) must be bit-identical in every process and on every backend, because a seed stands in for the
 * whole vector on the wire: a client's (seed, g) and the coordinator's replay must mean the same direction.
 *
 * The generator, fixed (changing any step changes every seed's meaning; bump Z_ALGORITHM if you ever must):
 * 1. Uniforms: seedrandom's Alea, seeded with the decimal string of the unsigned 32-bit seed (`String(s >>> 0)`);
 *    each call of the PRNG gives u ∈ [0, 1) with 32-bit resolution.
 * 2. Pairs (u1, u2) → Box–Muller in float64: ρ = √(−2 ln(1 − u1)), φ = 2π u2, emit ρ cos φ then ρ sin φ.
 *    (1 − u1 ∈ (0, 1], so ln never sees 0; |z| ≤ √(64 ln 2) ≈ 6.66.)
 * 3. Each value is rounded once to float32 (stored into a Float32Array).
 * The stream is consumed in order; a multi-tensor z walks the tensors in `zOrder` (names sorted by UTF-16 code
 * unit, independent of map insertion order, which may differ after a wire round trip) and continues the same
 * stream across tensor boundaries (a pending sin-value carries over).
 *
 * Why this is reproducible: Alea uses only float64 arithmetic exactly representable in IEEE 754, and V8 computes
 * Math.log/cos/sin with its own fdlibm port (src/base/ieee754), not the platform libm, so results do not depend on
 * the OS, CPU or tfjs backend. Tensor-side arithmetic (θ + c·z) is done here in JS when applied to host tensors; the
 * tf variant uses two float32 element-wise ops that every backend rounds identically (tested on cpu and wasm).
 *
 * Speed: ≈ 30 M values/s on one core (Node 20), so regenerating z three times per MeZO step costs ~0.1 s per
 * million trainable values.
 */
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { TrainError } from './errors.js';

/** Identifies the generator above; record it next to seeds that must stay replayable. */
export const Z_ALGORITHM = 'alea-boxmuller-f64-f32/v1';

const TWO_PI = 2 * Math.PI;

/** Throws unless `seed` is an integer in [0, 2^32). */
export function checkSeed(seed: number): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new TrainError(`perturbation seed must be an integer in [0, 2^32), got ${seed}`, 'bad_option');
  }
  return seed;
}

/** The standard-normal stream z(s), consumed in order. Two streams with the same seed emit identical values. */
export class NormalStream {
  private readonly uniform: seedrandom.PRNG;
  private spare = 0;
  private hasSpare = false;

  constructor(seed: number) {
    this.uniform = seedrandom.alea(String(checkSeed(seed) >>> 0));
  }

  /** Fills `out` with the next `out.length` values of the stream. */
  fill(out: Float32Array): void {
    const n = out.length;
    const u = this.uniform;
    let i = 0;
    if (this.hasSpare && n > 0) {
      out[i++] = this.spare;
      this.hasSpare = false;
    }
    for (; i + 1 < n; i += 2) {
      const rho = Math.sqrt(-2 * Math.log(1 - u()));
      const phi = TWO_PI * u();
      out[i] = rho * Math.cos(phi);
      out[i + 1] = rho * Math.sin(phi);
    }
    if (i < n) {
      const rho = Math.sqrt(-2 * Math.log(1 - u()));
      const phi = TWO_PI * u();
      out[i] = rho * Math.cos(phi);
      this.spare = rho * Math.sin(phi);
      this.hasSpare = true;
    }
  }
}

/** The first `n` values of z(s) as one vector. */
export function normals(seed: number, n: number): Float32Array {
  const out = new Float32Array(n);
  new NormalStream(seed).fill(out);
  return out;
}

/** The order z(s) walks a multi-tensor adapter: names sorted by UTF-16 code unit (locale-independent). */
export function zOrder(names: Iterable<string>): string[] {
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function tensorOf<T>(tensors: ReadonlyMap<string, T>, name: string): T {
  const t = tensors.get(name);
  if (t === undefined) throw new TrainError(`tensor "${name}" is not in the adapter`, 'bad_adapter');
  return t;
}

/**
 * Walks z(s) over `names` (in zOrder) tensor by tensor, handing each tensor's slice of z to `visit`. The slice is a
 * scratch buffer reused between tensors: copy it if you keep it. Only one tensor's worth of z is alive at a time.
 */
export function forEachNoise(
  sizes: ReadonlyMap<string, number>,
  names: Iterable<string>,
  seed: number,
  visit: (name: string, z: Float32Array) => void,
): void {
  const ordered = zOrder(names);
  let largest = 0;
  for (const name of ordered) largest = Math.max(largest, tensorOf(sizes, name));
  const scratch = new Float32Array(largest);
  const stream = new NormalStream(seed);
  for (const name of ordered) {
    const z = scratch.subarray(0, tensorOf(sizes, name));
    stream.fill(z);
    visit(name, z);
  }
}

/** Per-name element counts of a host tensor map. */
export function sizesOf(tensors: TensorMap): Map<string, number> {
  return new Map([...tensors].map(([name, t]) => [name, t.data.length]));
}

/** In place: θ[name] ← θ[name] + c·z(s) for each of `names`, each value computed in float64 and rounded once. */
export function addNoise(tensors: TensorMap, names: Iterable<string>, seed: number, c: number): void {
  forEachNoise(sizesOf(tensors), names, seed, (name, z) => {
    const d = tensorOf(tensors, name).data;
    for (let i = 0; i < z.length; i++) d[i] = d[i]! + c * z[i]!;
  });
}

/**
 * `dst[name] ← src[name] + c·z(s)` for each of `names`, without touching `src`: the perturbed copy a forward pass
 * reads. `dst` holds preallocated buffers of the same shapes (reused every step, so no per-step allocation).
 */
export function writePerturbed(src: TensorMap, dst: TensorMap, names: Iterable<string>, seed: number, c: number): void {
  forEachNoise(sizesOf(src), names, seed, (name, z) => {
    const s = tensorOf(src, name).data;
    const d = tensorOf(dst, name).data;
    if (d.length !== s.length) throw new TrainError(`scratch tensor "${name}" has the wrong size`, 'bad_adapter');
    for (let i = 0; i < z.length; i++) d[i] = s[i]! + c * z[i]!;
  });
}

/** Fresh host copies of `names` (the scratch buffers `writePerturbed` fills). */
export function scratchFor(tensors: TensorMap, names: Iterable<string>): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const name of names) {
    const t = tensorOf(tensors, name);
    out.set(name, { shape: [...t.shape], data: new Float32Array(t.data.length) });
  }
  return out;
}

/**
 * tf variant: θ + c·z(s) for each of `names` as new tf tensors (z uploaded from JS, then one float32 multiply and
 * one float32 add). Tensors not in `names` are returned as the same objects. Call inside tf.tidy, or dispose the
 * perturbed ones yourself.
 */
export function perturbTf(
  params: ReadonlyMap<string, tf.Tensor>,
  names: Iterable<string>,
  seed: number,
  c: number,
): Map<string, tf.Tensor> {
  const out = new Map(params);
  const sizes = new Map([...params].map(([name, t]) => [name, t.size]));
  forEachNoise(sizes, names, seed, (name, z) => {
    const theta = tensorOf(params, name);
    // The cpu backend may keep a reference to the uploaded array; z is a reused scratch buffer, hence the copy.
    out.set(
      name,
      tf.tidy(() => theta.add(tf.tensor(z.slice(), theta.shape, 'float32').mul(tf.scalar(c, 'float32')))),
    );
  });
  return out;
}
