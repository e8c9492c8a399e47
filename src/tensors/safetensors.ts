/**
 * The Hugging Face safetensors format (https://github.com/huggingface/safetensors, "Format" section):
 *
 *   [8 bytes: N, unsigned little-endian u64] [N bytes: JSON header, UTF-8, may be space-padded] [data section]
 *
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the start of
 * the data section, row-major, little-endian); an optional "__metadata__" entry holds string → string pairs.
 * Lethe reads F32, F16, BF16 and F64 (all become float32 HostTensors) and writes F32.
 *
 * `encodeSafetensors` / `decodeSafetensors` are pure; `readSafetensorsFile` / `writeSafetensorsFile` stream tensor
 * by tensor so a checkpoint never needs a second whole-file copy in memory.
 */
import { createHash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { SafetensorsError } from './errors.js';
import type { HostTensor, TensorMap } from './host.js';
import { sizeOf } from './host.js';

/** The reference implementation refuses headers above 100 MB; so do we (it bounds what a hostile file can allocate). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of every dtype the format defines. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** One header entry, validated against the data section length. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly begin: number; // byte offset into the data section
  readonly end: number; // exclusive
}

export interface SafetensorsContents {
  readonly tensors: Map<string, HostTensor>;
  readonly metadata: Record<string, string>;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------------------------
// dtype conversion

/** All 65536 half-precision bit patterns as float32, so F16 decoding is one table lookup per value. */
const F16_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24; // subnormal
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return t;
})();

/** Converts one tensor's little-endian bytes of `dtype` to float32. `bytes` may be unaligned. */
function toFloat32(bytes: Uint8Array, dtype: string, name: string): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32': {
      if (LITTLE_ENDIAN) return new Float32Array(bytes.slice().buffer); // slice: an aligned copy
      const out = new Float32Array(bytes.length / 4);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(bytes.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = F16_TABLE[view.getUint16(2 * i, true)]!;
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(bytes.length / 2);
      for (let i = 0; i < bits.length; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return new Float32Array(bits.buffer);
    }
    case 'F64': {
      const out = new Float32Array(bytes.length / 8);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    }
    default:
      throw new SafetensorsError(
        `tensor "${name}" has dtype ${dtype}; Lethe reads only F32, F16, BF16 and F64 (convert the file first)`,
        'unsupported_dtype',
        name,
      );
  }
}

/** float32 values as little-endian bytes. */
function float32Bytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i]!, true);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// header

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Reads the 8-byte little-endian header length, refusing lengths beyond the limit or the file. */
function headerLength(prefix: Uint8Array, totalBytes: number): number {
  if (prefix.length < 8 || totalBytes < 8) {
    throw new SafetensorsError(`file has ${totalBytes} bytes, fewer than the 8-byte header length prefix`, 'truncated');
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit; not a safetensors file?`, 'header_too_large');
  }
  if (n > BigInt(totalBytes - 8)) {
    throw new SafetensorsError(`header claims ${n} bytes but only ${totalBytes - 8} follow the prefix`, 'truncated');
  }
  return Number(n);
}

/** Parses and validates the JSON header against a data section of `dataBytes` bytes. */
export function parseSafetensorsHeader(
  header: Uint8Array,
  dataBytes: number,
): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(header));
  } catch (err) {
    throw new SafetensorsError('header is not valid UTF-8 JSON', 'bad_header', undefined, { cause: err });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError('header must be a JSON object mapping tensor names to entries', 'bad_header');
  }
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        throw new SafetensorsError('"__metadata__" must be an object of strings', 'bad_header');
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(`metadata "${k}" is not a string`, 'bad_header');
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    const offsets = e?.data_offsets;
    if (
      typeof e !== 'object' || e === null || typeof e.dtype !== 'string' ||
      !Array.isArray(e.shape) || !e.shape.every(isNonNegativeInt) ||
      !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)
    ) {
      throw new SafetensorsError(`tensor "${name}": entry must be {dtype: string, shape: int[], data_offsets: [int, int]}`, 'bad_header', name);
    }
    const elementBytes = DTYPE_BYTES[e.dtype];
    if (elementBytes === undefined) {
      throw new SafetensorsError(`tensor "${name}" has unknown dtype "${e.dtype}"`, 'unknown_dtype', name);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataBytes) {
      throw new SafetensorsError(
        `tensor "${name}": data_offsets [${begin}, ${end}] fall outside the ${dataBytes}-byte data section`,
        'offsets_out_of_range',
        name,
      );
    }
    const shape = e.shape as number[];
    const need = sizeOf(shape) * elementBytes;
    if (end - begin !== need) {
      throw new SafetensorsError(
        `tensor "${name}": shape [${shape.join(', ')}] of ${e.dtype} needs ${need} bytes but data_offsets span ${end - begin}`,
        'shape_mismatch',
        name,
      );
    }
    entries.push({ name, dtype: e.dtype, shape, begin, end });
  }
  return { entries, metadata };
}

/** The header bytes (space-padded to a multiple of 8, as the reference writer does) for tensors in map order. */
function encodeHeader(tensors: TensorMap, metadata: Record<string, string> | undefined): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new SafetensorsError('"__metadata__" is reserved and cannot name a tensor', 'bad_tensor', name);
    if (t.data.length !== sizeOf(t.shape)) {
      throw new SafetensorsError(`tensor "${name}" has ${t.data.length} values but shape [${t.shape.join(', ')}]`, 'bad_tensor', name);
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

function lengthPrefix(n: number): Uint8Array {
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(n), true);
  return prefix;
}

// ---------------------------------------------------------------------------------------------------------------
// in memory

/** Encodes tensors (in map order) as an F32 safetensors file. */
export function encodeSafetensors(tensors: TensorMap, metadata?: Record<string, string>): Uint8Array {
  const header = encodeHeader(tensors, metadata);
  let dataBytes = 0;
  for (const t of tensors.values()) dataBytes += t.data.byteLength;
  const out = new Uint8Array(8 + header.length + dataBytes);
  out.set(lengthPrefix(header.length), 0);
  out.set(header, 8);
  let at = 8 + header.length;
  for (const t of tensors.values()) {
    out.set(float32Bytes(t.data), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Decodes a whole safetensors file held in memory; every tensor becomes float32. Throws SafetensorsError. */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsContents {
  const n = headerLength(bytes, bytes.length);
  const dataStart = 8 + n;
  const { entries, metadata } = parseSafetensorsHeader(bytes.subarray(8, dataStart), bytes.length - dataStart);
  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    const data = toFloat32(bytes.subarray(dataStart + e.begin, dataStart + e.end), e.dtype, e.name);
    tensors.set(e.name, { shape: [...e.shape], data });
  }
  return { tensors, metadata };
}

// ---------------------------------------------------------------------------------------------------------------
// files

/**
 * Reads a safetensors file tensor by tensor. `keep(name)` selects tensors to decode (others are skipped unread, so
 * e.g. boolean attention-mask buffers in a checkpoint do not need a dtype Lethe supports).
 */
export async function readSafetensorsFile(path: string, keep: (name: string) => boolean = () => true): Promise<SafetensorsContents> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const prefix = new Uint8Array(8);
    await fh.read(prefix, 0, Math.min(8, size), 0);
    const n = headerLength(prefix, size);
    const header = new Uint8Array(n);
    await fh.read(header, 0, n, 8);
    const dataStart = 8 + n;
    const { entries, metadata } = parseSafetensorsHeader(header, size - dataStart);
    const tensors = new Map<string, HostTensor>();
    for (const e of entries) {
      if (!keep(e.name)) continue;
      const raw = new Uint8Array(e.end - e.begin);
      await fh.read(raw, 0, raw.length, dataStart + e.begin);
      tensors.set(e.name, { shape: [...e.shape], data: toFloat32(raw, e.dtype, e.name) });
    }
    return { tensors, metadata };
  } finally {
    await fh.close();
  }
}

/**
 * Writes tensors as an F32 safetensors file, streaming tensor by tensor to `path.tmp` and renaming, so a crash never
 * leaves a half-written file under the real name. Returns the byte count and the SHA-256 of the file.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: TensorMap,
  metadata?: Record<string, string>,
): Promise<{ bytes: number; sha256: string }> {
  const header = encodeHeader(tensors, metadata);
  const hash = createHash('sha256');
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  let bytes = 0;
  try {
    for (const chunk of [lengthPrefix(header.length), header, ...[...tensors.values()].map((t) => float32Bytes(t.data))]) {
      await fh.write(chunk);
      hash.update(chunk);
      bytes += chunk.length;
    }
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  return { bytes, sha256: hash.digest('hex') };
}
