/**
 * Page-aligned host memory for large payloads (received updates, aggregated adapters), so that the blob store can
 * write them to disk with O_DIRECT: the device reads the very buffer, and nothing is copied into the page cache
 * (store/sqlite/blob-files.ts says why that matters).
 *
 * Why WebAssembly.Memory: O_DIRECT needs the buffer's address aligned to the device's block size, and JavaScript can
 * neither ask for an aligned ArrayBuffer nor learn where one lies (malloc places large ones 16 bytes into a mapping).
 * A wasm memory is mapped by V8 itself and starts on a page boundary; a shared one is a SharedArrayBuffer. Memories
 * come in 64 KiB pages, so small buffers stay ordinary ArrayBuffers.
 */

/** Below this, buffers are ordinary: they are stored as database rows, and a wasm memory would round them up. */
export const PAGE_ALIGNED_MIN_BYTES = 1 << 20;

const WASM_PAGE_BYTES = 65536;
/** A wasm32 memory holds at most 4 GiB. */
const MAX_WASM_PAGES = 65536;

/** The slice of the WebAssembly JS API used here (the project's lib settings do not declare it; see fold-kernel.ts). */
interface WasmMemoryApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: true }) => { readonly buffer: SharedArrayBuffer };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmMemoryApi }).WebAssembly;

const aligned = new WeakSet<ArrayBufferLike>();

/**
 * Allocating wasm memories never prompts V8 to collect garbage: in a process doing nothing else, 400 dropped 32 MiB
 * ones were never collected (13 GB resident), where as many ArrayBuffers stayed under 0.3 GB. A coordinator's other
 * allocations do prompt collections (RSS stayed under 1.8 GB over 12 ingest rounds of 134 MB, as with the plain
 * buffers before), but past this many bytes of them not yet collected, buffers are ordinary ones.
 */
const MAX_UNCOLLECTED_BYTES = 1 << 30;
let uncollected = 0;
const collected = new FinalizationRegistry<number>((bytes) => {
  uncollected -= bytes;
});

/**
 * A zeroed buffer of at least `bytes`: from PAGE_ALIGNED_MIN_BYTES on, a page-aligned SharedArrayBuffer rounded up to
 * 64 KiB when the process can map one; otherwise (small, past MAX_UNCOLLECTED_BYTES, or no address space left for
 * another wasm memory) an ordinary ArrayBuffer of exactly `bytes`, which the store simply writes through the page
 * cache.
 */
export function pageAlignedBuffer(bytes: number): ArrayBufferLike {
  return (bytes >= PAGE_ALIGNED_MIN_BYTES && wasmMemory(bytes)) || new ArrayBuffer(bytes);
}

/** The same, always shared (for buffers that worker threads fill or read). */
export function sharedPageAlignedBuffer(bytes: number): SharedArrayBuffer {
  return (bytes >= PAGE_ALIGNED_MIN_BYTES && wasmMemory(bytes)) || new SharedArrayBuffer(bytes);
}

function wasmMemory(bytes: number): SharedArrayBuffer | undefined {
  const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
  if (pages > MAX_WASM_PAGES || uncollected + pages * WASM_PAGE_BYTES > MAX_UNCOLLECTED_BYTES) return undefined;
  try {
    const { buffer } = new wasm.Memory({ initial: pages, maximum: pages, shared: true });
    aligned.add(buffer);
    uncollected += buffer.byteLength;
    collected.register(buffer, buffer.byteLength);
    return buffer;
  } catch {
    return undefined; // RangeError: no room for another wasm memory
  }
}

/** Whether `buffer` came page-aligned from pageAlignedBuffer. */
export function isPageAligned(buffer: ArrayBufferLike): boolean {
  return aligned.has(buffer);
}
