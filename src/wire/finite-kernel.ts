/**
 * Whether float32 data holds a NaN or ±Infinity, in WebAssembly SIMD: the check every received chunk gets.
 *
 * Why: the scalar JS loop (exponent bits all ones?) runs at about 1 GB/s, as slow as hashing the bytes; four lanes
 * per instruction, four vectors per iteration, run at cache speed. WebAssembly reads only its own memory, so the
 * bytes are first copied into a 1 MiB scratch (a chunk, still in cache after the assembler copied it).
 *
 * The kernel, in WebAssembly text. `finite(p, end)` is 1 when no float in [p, end) has all exponent bits set;
 * end − p must be a multiple of 64.
 *
 *   (func (param $p i32) (param $end i32) (result i32) (local $acc v128) (local $mask v128)
 *     (local.set $mask (i32x4.splat (i32.const 0x7f800000)))
 *     (block (loop
 *       (br_if 1 (i32.ge_u (local.get $p) (local.get $end)))
 *       ($acc ← v128.or $acc (i32x4.eq (v128.and (v128.load offset=16i (local.get $p)) $mask) $mask)) for i = 0..3
 *       (local.set $p (i32.add (local.get $p) (i32.const 64)))
 *       (br 0)))
 *     (i32.eqz (v128.any_true (local.get $acc))))
 */

const SCRATCH_BYTES = 1 << 20;
const EXPONENT_BITS = 0x7f800000;

/** The slice of the WebAssembly JS API used here (the project's lib settings do not declare it; see fold-kernel.ts). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
}

const [P, END, ACC, MASK] = [0, 1, 2, 3];
const get = (i: number): number[] => [0x20, i];
const set = (i: number): number[] => [0x21, i];
/** (acc |= (load(p + off) & mask) == mask) */
const orBlock = (offset: number): number[] => [
  ...get(ACC), ...get(P), 0xfd, 0x00, 4, offset, // v128.load align=16
  ...get(MASK), 0xfd, 0x4e, // v128.and
  ...get(MASK), 0xfd, 0x37, // i32x4.eq
  0xfd, 0x50, ...set(ACC), // v128.or
];
const BODY = [
  1, 2, 0x7b, // locals: two v128
  0x41, 0x80, 0x80, 0x80, 0xfc, 0x07, 0xfd, 0x11, ...set(MASK), // i32.const 0x7f800000 (signed LEB128); i32x4.splat
  0x02, 0x40, 0x03, 0x40, // block, loop
  ...get(P), ...get(END), 0x4f, 0x0d, 1, // br_if 1 (p >= end)
  ...orBlock(0), ...orBlock(16), ...orBlock(32), ...orBlock(48),
  ...get(P), 0x41, 0xc0, 0x00, 0x6a, ...set(P), // p += 64
  0x0c, 0, 0x0b, 0x0b, // br 0, end loop, end block
  ...get(ACC), 0xfd, 0x53, 0x45, // v128.any_true, i32.eqz
  0x0b,
];
const MODULE_BYTES = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 7, 1, 0x60, 2, 0x7f, 0x7f, 1, 0x7f, // type: (i32, i32) -> i32
  0x02, 15, 1, 3, 0x65, 0x6e, 0x76, 6, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 1, // import env.memory, min 1 page
  0x03, 2, 1, 0, // one function of type 0
  0x07, 10, 1, 6, 0x66, 0x69, 0x6e, 0x69, 0x74, 0x65, 0x00, 0, // export "finite"
  0x0a, BODY.length + 2, 1, BODY.length, ...BODY, // code (the body is < 128 bytes: one-byte sizes)
]);

type FiniteFn = (p: number, end: number) => number;

let kernel: { readonly finite: FiniteFn; readonly scratch: Uint8Array; readonly words: Uint32Array } | undefined;

function instance(): NonNullable<typeof kernel> {
  if (kernel) return kernel;
  const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
  const memory = new wasm.Memory({ initial: SCRATCH_BYTES / 65536 });
  const { exports } = new wasm.Instance(new wasm.Module(MODULE_BYTES), { env: { memory } });
  kernel = { finite: exports['finite'] as FiniteFn, scratch: new Uint8Array(memory.buffer), words: new Uint32Array(memory.buffer) };
  return kernel;
}

/** True when the float32 values in `bytes` (a multiple of 4 bytes, at any offset) are all finite. */
export function allFinite(bytes: Uint8Array): boolean {
  const { finite, scratch, words } = instance();
  for (let at = 0; at < bytes.length; at += SCRATCH_BYTES) {
    const part = bytes.subarray(at, Math.min(at + SCRATCH_BYTES, bytes.length));
    scratch.set(part);
    const vectorBytes = part.length & ~63;
    if (finite(0, vectorBytes) === 0) return false;
    for (let w = vectorBytes >> 2; w < part.length >> 2; w++) if ((words[w]! & EXPONENT_BITS) === EXPONENT_BITS) return false;
  }
  return true;
}
