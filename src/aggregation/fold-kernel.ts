/**
 * The weighted-sum kernel behind aggregation: out = Σ_k w_k·x_k over float32 arrays, in WebAssembly SIMD. The
 * unlearning detector's neighbour search runs it over a memory of its own (foldKernelOver; src/unlearning/neighbours.ts).
 *
 * Why WebAssembly: a plain JS loop over Float32Arrays runs at ~2–3 GB/s here (scalar, bounds-checked), a fraction of
 * memcpy; the f32x4 loop below runs at cache speed. Why chunked: wasm can only read its own linear memory, so for
 * each 32 KiB chunk of the output, the matching chunks of up to 16 inputs are copied into scratch slots (512 KiB,
 * inside L2), and one kernel call sums them with the running sum held in registers, storing it once. Main-memory
 * traffic is therefore one read of every input plus one write of the output: what copying the inputs would cost.
 *
 * Why a float32 accumulator: the result is float32 anyway; f32x4 does four lanes per instruction where f64x2 does
 * two, and the sum stays half the size. Rounding: each input is added with one float32 rounding (w is rounded to
 * float32 too), so after K inputs the error is at most ≈ K·2⁻²⁴ relative to Σ|w_k x_k| and typically √K·2⁻²⁴, far
 * below client-to-client variation and DP noise.
 *
 * The kernel, in WebAssembly text. `fold(acc, src, stride, wts, k, nbytes, add)`: for every 64-byte block i of the
 * output, acc[i] = (add ? acc[i] : 0) + Σ_{j<k} wts[j]·src[j·stride + i]; nbytes must be a multiple of 64.
 *
 *   (func (param $acc i32) (param $src i32) (param $stride i32) (param $wts i32) (param $k i32) (param $n i32)
 *         (param $add i32)
 *     (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $w v128)
 *     (local $pa i32) (local $ps i32) (local $p i32) (local $wp i32) (local $end i32) (local $wend i32)
 *     (local.set $pa (local.get $acc)) (local.set $ps (local.get $src))
 *     (local.set $end (i32.add (local.get $acc) (local.get $n)))
 *     (local.set $wend (i32.add (local.get $wts) (i32.shl (local.get $k) (i32.const 2))))
 *     (block (loop                                                 ;; over 64-byte blocks
 *       (br_if 1 (i32.ge_u (local.get $pa) (local.get $end)))
 *       (if (local.get $add)
 *         (then ($v0..$v3 ← v128.load offset=0,16,32,48 (local.get $pa)))
 *         (else ($v0..$v3 ← v128.const 0)))
 *       (local.set $p (local.get $ps)) (local.set $wp (local.get $wts))
 *       (block (loop                                               ;; over the k inputs
 *         (br_if 1 (i32.ge_u (local.get $wp) (local.get $wend)))
 *         (local.set $w (v128.load32_splat (local.get $wp)))
 *         ($vi ← f32x4.add $vi (f32x4.mul (v128.load offset=16i (local.get $p)) $w)) for i = 0..3
 *         (local.set $p (i32.add (local.get $p) (local.get $stride)))
 *         (local.set $wp (i32.add (local.get $wp) (i32.const 4)))
 *         (br 0)))
 *       (v128.store offset=16i (local.get $pa) $vi) for i = 0..3
 *       (local.set $pa (i32.add (local.get $pa) (i32.const 64)))
 *       (local.set $ps (i32.add (local.get $ps) (i32.const 64)))
 *       (br 0))))
 *
 * `sumsq(p, nbytes)`: Σ x² over the float32 values in [p, p + nbytes), accumulated in float64 (each f32x4 is widened
 * to two f64x2, four accumulators): the norm DP and the round metrics take, exact to float64 rounding. nbytes must be
 * a multiple of 64.
 */

/** Floats per chunk: 32 KiB, so GROUP input slots plus the sum stay in L2. */
const CHUNK = 8192;
/** Inputs summed per kernel call. */
const GROUP = 16;
/** Floats the kernel handles per block (4 × f32x4). */
const STEP = 16;
/** Byte offsets in the kernel's memory: the sum chunk, the weights, then GROUP input slots. */
const SUM_AT = 0;
const WEIGHTS_AT = CHUNK * 4;
const SLOTS_AT = WEIGHTS_AT + GROUP * 4;

/**
 * The slice of the WebAssembly JS API used here. The project's lib settings (ES2023, @types/node 20) do not declare
 * the WebAssembly global although Node provides it, so it is typed locally instead of widening tsconfig.
 */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const WASM_MODULE = new wasm.Module(assembleFoldModule());

/** The kernel (see the header): byte addresses into its linear memory; nbytes a multiple of 64. */
export type FoldFn = (acc: number, src: number, stride: number, wts: number, k: number, nbytes: number, add: number) => void;
type SumsqFn = (p: number, nbytes: number) => number;

/** The kernel over a fresh linear memory of at least `bytes`, for callers that lay out their own data in it. */
export function foldKernelOver(bytes: number): { readonly fold: FoldFn; readonly sumsq: SumsqFn; readonly memory: ArrayBuffer } {
  const memory = new wasm.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
  const instance = new wasm.Instance(WASM_MODULE, { env: { memory } });
  return { fold: instance.exports['fold'] as FoldFn, sumsq: instance.exports['sumsq'] as SumsqFn, memory: memory.buffer };
}

/**
 * One kernel instance owns a small linear memory (about 0.6 MiB: sum chunk, weights, input slots). Cheap to create;
 * make one per aggregation rather than sharing it between interleaved calls.
 */
export class FoldKernel {
  private readonly fold: FoldFn;
  private readonly sumsq: SumsqFn;
  private readonly sum: Float32Array;
  private readonly weights: Float32Array;
  private readonly slots: Float32Array[];

  constructor() {
    const { fold, sumsq, memory } = foldKernelOver(SLOTS_AT + GROUP * CHUNK * 4);
    this.fold = fold;
    this.sumsq = sumsq;
    this.sum = new Float32Array(memory, SUM_AT, CHUNK);
    this.weights = new Float32Array(memory, WEIGHTS_AT, GROUP);
    this.slots = Array.from({ length: GROUP }, (_, j) => new Float32Array(memory, SLOTS_AT + j * CHUNK * 4, CHUNK));
  }

  /**
   * out[i] = Σ_k weights[k]·inputs[k][i]. `out` may be one of the inputs (each chunk is read before it is written).
   * Lengths must all equal out.length (the caller checks; this is the hot loop).
   */
  weightedSum(inputs: readonly Float32Array[], weights: readonly number[], out: Float32Array): void {
    if (inputs.length === 0) {
      out.fill(0);
      return;
    }
    for (let start = 0; start < out.length; start += CHUNK) {
      const len = this.sumChunk(inputs, weights, start, Math.min(CHUNK, out.length - start));
      out.set(len === CHUNK ? this.sum : this.sum.subarray(0, len), start);
    }
  }

  /**
   * out[i] = base[i] + Σ_k weights[k]·inputs[k][i] without materialising the sum, and returns Σ_i (Σ_k
   * weights[k]·inputs[k][i])², the squared norm of what was added (float64), taken from each chunk's sum while it is
   * in cache. `out` may be `base` or an input; lengths as for weightedSum.
   */
  addWeightedSum(base: Float32Array, inputs: readonly Float32Array[], weights: readonly number[], out: Float32Array): number {
    let squares = 0;
    for (let start = 0; start < out.length; start += CHUNK) {
      const len = Math.min(CHUNK, out.length - start);
      if (inputs.length > 0) this.sumChunk(inputs, weights, start, len);
      else this.sum.fill(0);
      const vectors = len - (len % STEP);
      squares += this.sumsq(SUM_AT, vectors * 4);
      for (let i = vectors; i < len; i++) squares += this.sum[i]! * this.sum[i]!;
      this.slots[0]!.set(base.subarray(start, start + len));
      this.weights[0] = 1;
      this.fold(SUM_AT, SLOTS_AT, CHUNK * 4, WEIGHTS_AT, 1, blockBytes(len), 1);
      out.set(len === CHUNK ? this.sum : this.sum.subarray(0, len), start);
    }
    return squares;
  }

  /** Leaves Σ_k weights[k]·inputs[k][start, start + len) in the first `len` floats of the sum chunk; returns len. */
  private sumChunk(inputs: readonly Float32Array[], weights: readonly number[], start: number, len: number): number {
    for (let first = 0; first < inputs.length; first += GROUP) {
      const k = Math.min(GROUP, inputs.length - first);
      for (let j = 0; j < k; j++) {
        this.slots[j]!.set(inputs[first + j]!.subarray(start, start + len));
        this.weights[j] = weights[first + j]!;
      }
      this.fold(SUM_AT, SLOTS_AT, CHUNK * 4, WEIGHTS_AT, k, blockBytes(len), first === 0 ? 0 : 1);
    }
    return len;
  }
}

/** Whole 64-byte blocks covering `len` floats: lanes past `len` sum stale slot values into sum lanes never copied out. */
function blockBytes(len: number): number {
  return Math.ceil(len / STEP) * STEP * 4;
}

/** Builds the binary module described in the header (imports env.memory, exports `fold`). */
function assembleFoldModule(): Uint8Array {
  const leb = (n: number): number[] => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n !== 0) b |= 0x80;
      out.push(b);
    } while (n !== 0);
    return out;
  };
  const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
  const name = (s: string): number[] => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
  const [I32, V128, F64] = [0x7f, 0x7b, 0x7c];
  const [ACC, SRC, STRIDE, WTS, K, N, ADD] = [0, 1, 2, 3, 4, 5, 6];
  const V = [7, 8, 9, 10];
  const [W, PA, PS, P, WP, END, WEND] = [11, 12, 13, 14, 15, 16, 17];
  const get = (i: number): number[] => [0x20, i];
  const set = (i: number): number[] => [0x21, i];
  const load = (off: number): number[] => [0xfd, 0x00, 4, off]; // v128.load align=16 offset=off
  const store = (off: number): number[] => [0xfd, 0x0b, 4, off]; // v128.store
  const add = (i: number, by: number[]): number[] => [...get(i), ...by, 0x6a, ...set(i)]; // i += by (i32)
  const sleb = (n: number): number[] => {
    const out: number[] = [];
    for (;;) {
      const b = n & 0x7f;
      n >>= 7;
      const done = (n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0);
      out.push(done ? b : b | 0x80);
      if (done) return out;
    }
  };
  const i32 = (c: number): number[] => [0x41, ...sleb(c)]; // i32.const takes a signed LEB128
  const F32X4_ADD = [0xfd, 0xe4, 0x01];
  const F32X4_MUL = [0xfd, 0xe6, 0x01];
  const body = [
    2, 5, V128, 6, I32, // locals: $v0..$v3 $w; $pa $ps $p $wp $end $wend
    ...get(ACC), ...set(PA), ...get(SRC), ...set(PS),
    ...get(ACC), ...get(N), 0x6a, ...set(END),
    ...get(WTS), ...get(K), ...i32(2), 0x74, 0x6a, ...set(WEND), // wts + (k << 2)
    0x02, 0x40, 0x03, 0x40, // block, loop (blocks)
    ...get(PA), ...get(END), 0x4f, 0x0d, 1, // br_if 1 (pa >= end)
    ...get(ADD), 0x04, 0x40, // if
    ...V.flatMap((v, i) => [...get(PA), ...load(16 * i), ...set(v)]),
    0x05, // else
    ...V.flatMap((v) => [0xfd, 0x0c, ...new Array<number>(16).fill(0), ...set(v)]), // v128.const 0
    0x0b, // end if
    ...get(PS), ...set(P), ...get(WTS), ...set(WP),
    0x02, 0x40, 0x03, 0x40, // block, loop (inputs)
    ...get(WP), ...get(WEND), 0x4f, 0x0d, 1,
    ...get(WP), 0xfd, 0x09, 2, 0, ...set(W), // v128.load32_splat align=4
    ...V.flatMap((v, i) => [...get(v), ...get(P), ...load(16 * i), ...get(W), ...F32X4_MUL, ...F32X4_ADD, ...set(v)]),
    ...add(P, get(STRIDE)), ...add(WP, i32(4)),
    0x0c, 0, 0x0b, 0x0b, // br 0, end loop, end block
    ...V.flatMap((v, i) => [...get(PA), ...get(v), ...store(16 * i)]),
    ...add(PA, i32(64)), ...add(PS, i32(64)),
    0x0c, 0, 0x0b, 0x0b, // br 0, end loop, end block
    0x0b, // end func
  ];
  const sumsq = assembleSumsq({ get, set, load, add, i32 });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [2, 0x60, 7, I32, I32, I32, I32, I32, I32, I32, 0, 0x60, 2, I32, I32, 1, F64]), // (i32 ×7) -> (); (i32, i32) -> f64
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, 1]), // import memory, min 1 page
    ...section(3, [2, 0, 1]),
    ...section(7, [2, ...name('fold'), 0x00, 0, ...name('sumsq'), 0x00, 1]),
    ...section(10, [2, ...leb(body.length), ...body, ...leb(sumsq.length), ...sumsq]),
  ]);
}

interface Emit {
  readonly get: (i: number) => number[];
  readonly set: (i: number) => number[];
  readonly load: (off: number) => number[];
  readonly add: (i: number, by: number[]) => number[];
  readonly i32: (c: number) => number[];
}

/** The body of `sumsq` (see the header), with the emitters of assembleFoldModule. */
function assembleSumsq({ get, set, load, add, i32 }: Emit): number[] {
  const [I32, V128] = [0x7f, 0x7b];
  const [P, N, END, V, H] = [0, 1, 2, 3, 4];
  const A = [5, 6, 7, 8];
  const PROMOTE_LOW = [0xfd, 0x5f]; // f64x2.promote_low_f32x4
  const F64X2_ADD = [0xfd, 0xf0, 0x01];
  const F64X2_MUL = [0xfd, 0xf2, 0x01];
  const HIGH_TO_LOW = [0xfd, 0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]; // i8x16.shuffle
  /** a += x·x, x the f64x2 that `widen` leaves on the stack. */
  const square = (a: number, widen: number[]): number[] => [...widen, ...set(H), ...get(a), ...get(H), ...get(H), ...F64X2_MUL, ...F64X2_ADD, ...set(a)];
  return [
    2, 1, I32, 6, V128, // locals: $end; $v $h $a0..$a3
    ...get(P), ...get(N), 0x6a, ...set(END),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(P), ...get(END), 0x4f, 0x0d, 1, // br_if 1 (p >= end)
    ...[0, 1, 2, 3].flatMap((i) => [
      ...get(P), ...load(16 * i), ...set(V),
      ...square(A[(2 * i) % 4]!, [...get(V), ...PROMOTE_LOW]),
      ...square(A[(2 * i + 1) % 4]!, [...get(V), ...get(V), ...HIGH_TO_LOW, ...PROMOTE_LOW]),
    ]),
    ...add(P, i32(64)),
    0x0c, 0, 0x0b, 0x0b, // br 0, end loop, end block
    ...get(A[0]!), ...get(A[1]!), ...F64X2_ADD, ...get(A[2]!), ...get(A[3]!), ...F64X2_ADD, ...F64X2_ADD, ...set(V),
    ...get(V), 0xfd, 0x21, 0, ...get(V), 0xfd, 0x21, 1, 0xa0, // f64x2.extract_lane 0 + lane 1
    0x0b,
  ];
}
