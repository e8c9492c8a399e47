/**
 * Tensor payload codec (proto/lethe/v1/tensor.proto): a TensorMap becomes a manifest plus the raw little-endian
 * float32 payload cut into chunks, and back.
 *
 * Integrity is one incremental SHA-256 over the payload. Each chunk carries the running digest (payload byte 0 through
 * the chunk's last byte), so a single hashing pass verifies every chunk as it arrives and, with the last chunk, the
 * whole payload against the manifest. Two passes (a hash per chunk plus a total hash) would double hashing, the
 * largest CPU cost of verification.
 *
 * Pure: no I/O, no clocks. Hashing uses node:crypto.
 */
import { createHash, type Hash } from 'node:crypto';
import { sizeOf, type HostTensor, type TensorMap } from '../tensors/host.js';
import { sharedPageAlignedBuffer } from '../tensors/page-aligned.js';
import { ChunkError, LimitError, ManifestError, NonFiniteTensorError, PayloadError, ProtocolError } from './errors.js';
import type { DeferredDigests, DigestVerifier } from './digest-worker.js';
import { allFinite } from './finite-kernel.js';

/** The only element type defined on the wire. */
export const DTYPE_F32 = 'f32';
/** Largest chunk the protocol allows (tensor.proto). */
export const MAX_CHUNK_BYTES = 1 << 20;
const SHA256_BYTES = 32;

/** A manifest entry (mirrors lethe.v1.TensorEntry; a decoded proto message fits this type). */
export interface WireTensorEntry {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** Mirrors lethe.v1.TensorManifest. */
export interface WireManifest {
  readonly entries: readonly WireTensorEntry[];
  readonly totalBytes: number;
  /** SHA-256 of the whole payload, 32 bytes. */
  readonly sha256: Uint8Array;
}

/** Mirrors lethe.v1.TensorChunk. */
export interface WireChunk {
  readonly index: number;
  readonly data: Uint8Array;
  /** SHA-256 of the payload from byte 0 through this chunk's last byte. */
  readonly runningSha256: Uint8Array;
}

export interface EncodedTensors {
  readonly manifest: WireManifest;
  /** Views into one payload buffer (no per-chunk copies). */
  readonly chunks: readonly WireChunk[];
}

export interface EncodeOptions {
  /** Payload bytes per chunk, 1 .. MAX_CHUNK_BYTES. Default MAX_CHUNK_BYTES. */
  readonly chunkBytes?: number;
}

/** What a receiver accepts. Build once per endpoint; `expected` per transfer. */
export interface AssemblyLimits {
  /** Largest payload accepted. Default 64 MiB (GPT-2 small with r = 8 LoRA on all four modules is ≈ 4.7 MB). */
  readonly maxTotalBytes: number;
  /** Most tensors in one payload. Default 4096. */
  readonly maxTensors: number;
  /** Largest chunk accepted. Default MAX_CHUNK_BYTES. */
  readonly maxChunkBytes: number;
  /** When given, the payload must hold exactly these names with these shapes; the result follows this order. */
  readonly expected?: ReadonlyMap<string, readonly number[]>;
}

export const DEFAULT_ASSEMBLY_LIMITS: AssemblyLimits = Object.freeze({
  maxTotalBytes: 64 << 20,
  maxTensors: 4096,
  maxChunkBytes: MAX_CHUNK_BYTES,
});

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndian(): void {
  // Float32Array bytes are copied as-is; on a big-endian host they would need swapping, which nothing does.
  if (!LITTLE_ENDIAN) throw new ProtocolError('the wire codec needs a little-endian host', 'platform_unsupported');
}

/** The bytes of float32 data, as a view. */
export function bytesOf(data: Float32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

const EXPONENT_BITS = 0x7f800000;

/** True when words [from, to) of float32 bit patterns hold no NaN or ±Inf (exponent all ones). Integer tests beat
 * float comparisons here by about 1.5×. */
function finiteBits(bits: Uint32Array, from = 0, to = bits.length): boolean {
  for (let i = from; i < to; i++) {
    if ((bits[i]! & EXPONENT_BITS) === EXPONENT_BITS) return false;
  }
  return true;
}

function isFiniteArray(data: Float32Array): boolean {
  return finiteBits(new Uint32Array(data.buffer, data.byteOffset, data.length));
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Serialises tensors into a manifest and chunks. Throws NonFiniteTensorError (listing the tensors) for NaN/±Inf and
 * ManifestError for a tensor whose data length does not match its shape.
 */
export function encodeTensors(tensors: TensorMap, options: EncodeOptions = {}): EncodedTensors {
  requireLittleEndian();
  const chunkBytes = options.chunkBytes ?? MAX_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new RangeError(`chunkBytes must be an integer in 1..${MAX_CHUNK_BYTES}, got ${chunkBytes}`);
  }
  const entries: WireTensorEntry[] = [];
  const nonFinite: string[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '') throw new ManifestError('tensor names must not be empty', 'manifest_invalid');
    if (t.shape.some((d) => !Number.isInteger(d) || d < 1) || t.data.length !== sizeOf(t.shape)) {
      throw new ManifestError(`tensor ${name}: shape ${formatShape(t.shape)} does not fit its ${t.data.length} values`, 'manifest_invalid');
    }
    if (!isFiniteArray(t.data)) nonFinite.push(name);
    entries.push({ name, shape: [...t.shape], dtype: DTYPE_F32, byteOffset: offset, byteLength: t.data.byteLength });
    offset += t.data.byteLength;
  }
  if (nonFinite.length > 0) throw new NonFiniteTensorError(nonFinite);

  const payload = Buffer.allocUnsafeSlow(offset);
  for (const [i, t] of [...tensors.values()].entries()) payload.set(bytesOf(t.data), entries[i]!.byteOffset);

  const hash = createHash('sha256');
  const chunks: WireChunk[] = [];
  for (let start = 0; start < payload.length; start += chunkBytes) {
    const data = payload.subarray(start, Math.min(start + chunkBytes, payload.length));
    hash.update(data);
    chunks.push({ index: chunks.length, data, runningSha256: hash.copy().digest() });
  }
  return { manifest: { entries, totalBytes: offset, sha256: hash.digest() }, chunks };
}

/** Validates a manifest against itself and the receiver's limits before any chunk is accepted. */
function checkManifest(manifest: WireManifest, limits: AssemblyLimits): void {
  const { entries, totalBytes } = manifest;
  if (entries.length > limits.maxTensors) {
    throw new LimitError(`payload has ${entries.length} tensors; this endpoint accepts at most ${limits.maxTensors}`, 'too_many_tensors');
  }
  if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
    throw new ManifestError(`manifest total_bytes ${totalBytes} is not a byte count`, 'manifest_invalid');
  }
  if (totalBytes > limits.maxTotalBytes) {
    throw new LimitError(`payload of ${totalBytes} bytes exceeds this endpoint's limit of ${limits.maxTotalBytes} bytes`, 'payload_too_large');
  }
  if (manifest.sha256.length !== SHA256_BYTES) {
    throw new ManifestError(`manifest sha256 has ${manifest.sha256.length} bytes, expected ${SHA256_BYTES}`, 'manifest_invalid');
  }
  const names = new Set<string>();
  let offset = 0;
  for (const e of entries) {
    if (e.name === '' || names.has(e.name)) {
      throw new ManifestError(`manifest tensor name ${JSON.stringify(e.name)} is empty or repeated`, 'manifest_invalid');
    }
    names.add(e.name);
    if (e.dtype !== DTYPE_F32) {
      throw new ManifestError(`tensor ${e.name} has dtype ${JSON.stringify(e.dtype)}; only "${DTYPE_F32}" is supported`, 'dtype_unsupported');
    }
    if (e.shape.some((d) => !Number.isInteger(d) || d < 1) || e.byteLength !== 4 * sizeOf(e.shape)) {
      throw new ManifestError(`tensor ${e.name}: shape ${formatShape(e.shape)} does not match byte_length ${e.byteLength}`, 'manifest_invalid');
    }
    if (e.byteOffset !== offset) {
      throw new ManifestError(`tensor ${e.name} starts at byte ${e.byteOffset}, expected ${offset} (entries must be contiguous)`, 'manifest_invalid');
    }
    offset += e.byteLength;
  }
  if (offset !== totalBytes) {
    throw new ManifestError(`manifest entries cover ${offset} bytes but total_bytes is ${totalBytes}`, 'manifest_invalid');
  }
  if (limits.expected) checkExpected(entries, limits.expected);
}

function checkExpected(entries: readonly WireTensorEntry[], expected: ReadonlyMap<string, readonly number[]>): void {
  const got = new Map(entries.map((e) => [e.name, e.shape]));
  const missing = [...expected.keys()].filter((n) => !got.has(n));
  const unexpected = [...got.keys()].filter((n) => !expected.has(n));
  if (missing.length > 0 || unexpected.length > 0) {
    const parts = [missing.length ? `missing ${missing.join(', ')}` : '', unexpected.length ? `unexpected ${unexpected.join(', ')}` : ''];
    throw new ManifestError(`payload tensors do not match the expected layout: ${parts.filter(Boolean).join('; ')}`, 'name_mismatch');
  }
  for (const [name, shape] of expected) {
    const s = got.get(name)!;
    if (s.length !== shape.length || s.some((d, i) => d !== shape[i])) {
      throw new ManifestError(`tensor ${name} has shape ${formatShape(s)}, expected ${formatShape(shape)}`, 'shape_mismatch');
    }
  }
}

/**
 * Rebuilds a TensorMap from a validated manifest and its chunks, fed in order. Every chunk is checked against its
 * running digest before it is copied, and the floats it completes are checked for NaN/±Inf while still in cache;
 * `finish` checks completeness and the total digest, and reports non-finite tensors. The assembler copies each chunk
 * once, into one payload buffer of its own (allocated on the first chunk, so a stalled upload holds little memory;
 * not pooled, so aligned: a `bytes` field at an odd offset is never viewed as floats). The tensors it returns are
 * views into that buffer, and `payload` is the whole of it. After any error it refuses further input.
 *
 * With a DigestVerifier (digest-worker.ts) the running digests are checked on another thread instead: each chunk is
 * copied first (into a shared buffer) and its check queued, a mismatch found meanwhile fails the next `push`, and
 * nothing is verified until `verified()` has resolved. Without one, `verified()` resolves at once.
 */
export class TensorAssembler {
  readonly limits: AssemblyLimits;
  private readonly hash: Hash = createHash('sha256');
  private readonly offThread: DigestVerifier | undefined;
  private deferred: DeferredDigests | undefined;
  private buffer: Buffer | undefined;
  private bits: Uint32Array | undefined;
  private readonly nonFinite = new Set<string>();
  private received = 0;
  private nextIndex = 0;
  private lastDigest: Buffer | undefined;
  private closed: Error | undefined;

  constructor(
    readonly manifest: WireManifest,
    limits: Partial<AssemblyLimits> = {},
    /** Where running digests are checked; default this thread, as each chunk arrives. */
    digests?: DigestVerifier,
    /** With `digests`: the payload buffer to fill (at least total_bytes long, used by nothing else), e.g. one PayloadReserve set aside. */
    private readonly reserved?: SharedArrayBuffer,
  ) {
    requireLittleEndian();
    this.limits = { ...DEFAULT_ASSEMBLY_LIMITS, ...limits };
    checkManifest(manifest, this.limits);
    this.offThread = digests;
    if (reserved && (!digests || reserved.byteLength < manifest.totalBytes)) {
      throw new RangeError(`a reserved payload buffer needs off-thread digests and at least ${manifest.totalBytes} bytes, got ${reserved.byteLength}`);
    }
  }

  get receivedBytes(): number {
    return this.received;
  }

  /** True once every payload byte has arrived and verified. */
  get complete(): boolean {
    return this.received === this.manifest.totalBytes;
  }

  /** The payload bytes received so far (all of them once `finish` has succeeded). */
  get payload(): Uint8Array {
    return this.buffer ? this.buffer.subarray(0, this.received) : new Uint8Array(0);
  }

  /**
   * Verifies and stores the next chunk; returns the assembler's copy of it (a view into `payload`). Throws ChunkError /
   * LimitError; the assembler is unusable afterwards.
   */
  push(chunk: WireChunk): Uint8Array {
    if (this.closed) throw new PayloadError(`assembler no longer accepts chunks: ${this.closed.message}`, 'assembler_closed', { cause: this.closed });
    try {
      return this.accept(chunk);
    } catch (err) {
      this.closed = err as Error;
      throw err;
    }
  }

  private accept(chunk: WireChunk): Uint8Array {
    const { data } = chunk;
    const total = this.manifest.totalBytes;
    if (chunk.index !== this.nextIndex) {
      throw new ChunkError(`chunk ${chunk.index} arrived where chunk ${this.nextIndex} was expected`, 'chunk_out_of_order');
    }
    if (this.received === total) {
      throw new ChunkError(`chunk ${chunk.index} arrived after all ${total} payload bytes`, 'chunk_extra');
    }
    if (data.length === 0) throw new ChunkError(`chunk ${chunk.index} is empty`, 'chunk_empty');
    if (data.length > this.limits.maxChunkBytes) {
      throw new LimitError(`chunk ${chunk.index} has ${data.length} bytes; at most ${this.limits.maxChunkBytes} are accepted`, 'chunk_too_large');
    }
    if (this.received + data.length > total) {
      throw new ChunkError(`chunk ${chunk.index} ends at byte ${this.received + data.length}, past total_bytes ${total}`, 'chunk_overrun');
    }
    if (this.offThread) return this.acceptDeferred(chunk);
    this.hash.update(data);
    const digest = this.hash.copy().digest();
    if (!digest.equals(chunk.runningSha256)) {
      throw new ChunkError(`chunk ${chunk.index} does not match its running sha256: corrupted or reordered in transit`, 'chunk_hash_mismatch');
    }
    const copy = this.copyIn(data);
    this.nextIndex++;
    this.lastDigest = digest;
    return copy;
  }

  /** Copies the chunk and queues its digest check; a mismatch reported for an earlier chunk fails this one. */
  private acceptDeferred(chunk: WireChunk): Uint8Array {
    if (this.deferred?.failure) throw this.deferred.failure;
    if (chunk.runningSha256.length !== SHA256_BYTES) {
      throw new ChunkError(`chunk ${chunk.index} does not match its running sha256: corrupted or reordered in transit`, 'chunk_hash_mismatch');
    }
    const start = this.received;
    const copy = this.copyIn(chunk.data);
    this.deferred!.check(chunk.index, start, chunk.data.length, chunk.runningSha256);
    this.nextIndex++;
    this.lastDigest = Buffer.from(chunk.runningSha256); // claimed; verified() proves it
    return copy;
  }

  private copyIn(data: Uint8Array): Uint8Array {
    if (this.buffer === undefined) {
      const total = this.manifest.totalBytes;
      if (this.offThread) {
        const shared = this.reserved ?? sharedPageAlignedBuffer(total);
        this.deferred = this.offThread.open(shared);
        this.buffer = Buffer.from(shared, 0, total);
      } else this.buffer = Buffer.allocUnsafeSlow(total);
      this.bits = new Uint32Array(this.buffer.buffer, 0, total >> 2);
    }
    const start = this.received;
    this.buffer.set(data, start);
    this.received += data.length;
    // Check the floats this copy completed while they are still in cache.
    const from = start >> 2;
    const to = this.received >> 2;
    if (!allFinite(this.buffer.subarray(from << 2, to << 2))) this.noteNonFinite(from, to);
    return this.buffer.subarray(start, this.received);
  }

  /** Names the tensors holding a non-finite value among floats [from, to) of the payload. */
  private noteNonFinite(from: number, to: number): void {
    for (const e of this.manifest.entries) {
      const lo = Math.max(from, e.byteOffset >> 2);
      const hi = Math.min(to, (e.byteOffset + e.byteLength) >> 2);
      if (lo < hi && !finiteBits(this.bits!, lo, hi)) this.nonFinite.add(e.name);
    }
  }

  /**
   * Resolves once every chunk's running digest has been checked and matched (at once when checked on this thread);
   * rejects with the ChunkError of the first that did not. Call after `finish`, and trust the payload only then.
   */
  async verified(): Promise<void> {
    await this.deferred?.verified();
  }

  /** Stops off-thread checks of a payload given up (after an error); nothing to do for checks on this thread. */
  abandon(): void {
    this.deferred?.drop();
  }

  /** The decoded tensors (in `limits.expected` order when given, else manifest order), views into `payload`. Callable once. */
  finish(): Map<string, HostTensor> {
    if (this.closed) throw new PayloadError(`assembler no longer usable: ${this.closed.message}`, 'assembler_closed', { cause: this.closed });
    this.closed = new PayloadError('payload already assembled', 'assembler_closed');
    const total = this.manifest.totalBytes;
    if (this.received < total) {
      throw new PayloadError(`payload truncated: ${this.received} of ${total} bytes arrived`, 'payload_truncated');
    }
    const digest = this.lastDigest ?? this.hash.digest();
    if (!digest.equals(this.manifest.sha256)) {
      throw new PayloadError('payload does not hash to the manifest sha256', 'payload_hash_mismatch');
    }
    if (this.nonFinite.size > 0) throw new NonFiniteTensorError([...this.nonFinite]);
    const buffer = this.buffer?.buffer ?? new ArrayBuffer(0);
    const byName = new Map<string, HostTensor>();
    for (const e of this.manifest.entries) byName.set(e.name, { shape: [...e.shape], data: new Float32Array(buffer, e.byteOffset, e.byteLength / 4) });
    if (!this.limits.expected) return byName;
    return new Map([...this.limits.expected.keys()].map((name) => [name, byName.get(name)!]));
  }
}

/** Assembles a complete payload held in memory (e.g. a stored update). */
export function decodeTensors(manifest: WireManifest, chunks: Iterable<WireChunk>, limits: Partial<AssemblyLimits> = {}): Map<string, HostTensor> {
  const assembler = new TensorAssembler(manifest, limits);
  for (const c of chunks) assembler.push(c);
  return assembler.finish();
}

/** Lower-case hex of a digest, the printable form of an adapter version. */
export function hexDigest(sha256: Uint8Array): string {
  return Buffer.from(sha256.buffer, sha256.byteOffset, sha256.byteLength).toString('hex');
}
