import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsError } from '../../src/tensors/errors.js';
import type { HostTensor } from '../../src/tensors/host.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  MAX_HEADER_BYTES,
  readSafetensorsFile,
  writeSafetensorsFile,
} from '../../src/tensors/safetensors.js';

/** A safetensors file assembled by hand: u64 LE header length, the JSON header, then `data`. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SafetensorsError);
    return (err as SafetensorsError).code;
  }
  throw new Error('expected a SafetensorsError');
}

const sample = (): Map<string, HostTensor> =>
  new Map<string, HostTensor>([
    ['b.weight', { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-8, -7]) }],
    ['a.bias', { shape: [3], data: Float32Array.from([0.25, 0.5, -0.75]) }],
    ['scalar', { shape: [], data: Float32Array.from([42]) }],
  ]);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lethe-st-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('safetensors encoding', () => {
  it('safetensors – encode then decode round-trips names, order, shapes, values and metadata', () => {
    const bytes = encodeSafetensors(sample(), { format: 'pt', note: 'x' });
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect([...tensors.keys()]).toEqual(['b.weight', 'a.bias', 'scalar']);
    for (const [name, t] of sample()) {
      expect(tensors.get(name)!.shape).toEqual(t.shape);
      expect(tensors.get(name)!.data).toEqual(t.data);
    }
    expect(metadata).toEqual({ format: 'pt', note: 'x' });
  });

  it('safetensors – the header is space-padded to 8 bytes and lays tensors out contiguously as F32', () => {
    const bytes = encodeSafetensors(sample());
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header['b.weight']).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
    expect(header['a.bias'].data_offsets).toEqual([24, 36]);
    expect(bytes.length).toBe(8 + n + 40);
    expect(new DataView(bytes.buffer).getFloat32(8 + n + 8, true)).toBe(3.5);
  });

  it('safetensors – reads F16, BF16 and F64 tensors as float32', () => {
    const data = new Uint8Array(2 * 4 + 2 * 3 + 8 * 2);
    const view = new DataView(data.buffer);
    [0x3c00, 0xc000, 0x3555, 0x0001].forEach((h, i) => view.setUint16(2 * i, h, true)); // 1, -2, 0.333251953125, 2^-24
    [0x3f80, 0x4049, 0xff80].forEach((h, i) => view.setUint16(8 + 2 * i, h, true)); // 1, 3.140625, -Infinity
    view.setFloat64(14, 0.1, true);
    view.setFloat64(22, -3, true);
    const bytes = rawFile(
      {
        half: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
        brain: { dtype: 'BF16', shape: [3], data_offsets: [8, 14] },
        double: { dtype: 'F64', shape: [2], data_offsets: [14, 30] },
      },
      data,
    );
    const { tensors } = decodeSafetensors(bytes);
    expect([...tensors.get('half')!.data]).toEqual([1, -2, 0.333251953125, 2 ** -24]);
    expect([...tensors.get('brain')!.data]).toEqual([1, 3.140625, -Infinity]);
    expect([...tensors.get('double')!.data]).toEqual([Math.fround(0.1), -3]);
  });
});

describe('safetensors malformed files', () => {
  it('safetensors – refuses a file shorter than the length prefix', () => {
    expect(errorCode(() => decodeSafetensors(new Uint8Array(5)))).toBe('truncated');
  });

  it('safetensors – refuses a header length beyond the 100 MB limit', () => {
    expect(errorCode(() => decodeSafetensors(rawFile({}, undefined, BigInt(MAX_HEADER_BYTES + 1))))).toBe('header_too_large');
  });

  it('safetensors – refuses a header length beyond the end of the file', () => {
    expect(errorCode(() => decodeSafetensors(rawFile({}, undefined, 1000n)))).toBe('truncated');
  });

  it('safetensors – refuses a header that is not a JSON object of entries', () => {
    const bad = rawFile({});
    bad.set(new TextEncoder().encode('{x'), 8);
    expect(errorCode(() => decodeSafetensors(bad))).toBe('bad_header');
    expect(errorCode(() => decodeSafetensors(rawFile({ t: { dtype: 'F32', shape: 'x', data_offsets: [0, 0] } })))).toBe('bad_header');
  });

  it('safetensors – refuses an unknown dtype and names the tensor', () => {
    const bytes = rawFile({ weird: { dtype: 'F42', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4));
    expect(() => decodeSafetensors(bytes)).toThrow(/"weird" has unknown dtype "F42"/);
    expect(errorCode(() => decodeSafetensors(bytes))).toBe('unknown_dtype');
  });

  it('safetensors – refuses a defined dtype it cannot convert to float32', () => {
    const bytes = rawFile({ ids: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(errorCode(() => decodeSafetensors(bytes))).toBe('unsupported_dtype');
  });

  it('safetensors – refuses data offsets outside the data section', () => {
    const bytes = rawFile({ t: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(8));
    expect(errorCode(() => decodeSafetensors(bytes))).toBe('offsets_out_of_range');
  });

  it('safetensors – refuses a shape whose size does not match its byte range', () => {
    const bytes = rawFile({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(errorCode(() => decodeSafetensors(bytes))).toBe('shape_mismatch');
  });

  it('safetensors – refuses to encode a tensor whose data does not fill its shape', () => {
    const bad = new Map([['t', { shape: [4], data: new Float32Array(3) }]]);
    expect(errorCode(() => encodeSafetensors(bad))).toBe('bad_tensor');
  });
});

describe('safetensors files', () => {
  it('safetensors – writeSafetensorsFile writes the encoder\'s bytes and returns their SHA-256', async () => {
    const path = join(dir, 'a.safetensors');
    const { bytes, sha256 } = await writeSafetensorsFile(path, sample(), { format: 'pt' });
    const onDisk = await readFile(path);
    expect(Buffer.compare(onDisk, Buffer.from(encodeSafetensors(sample(), { format: 'pt' })))).toBe(0);
    expect(bytes).toBe(onDisk.length);
    expect(sha256).toBe(createHash('sha256').update(onDisk).digest('hex'));
  });

  it('safetensors – readSafetensorsFile decodes only the tensors kept, skipping unsupported ones', async () => {
    const path = join(dir, 'mixed.safetensors');
    const data = new Uint8Array(4 + 1);
    new DataView(data.buffer).setFloat32(0, 2.5, true);
    await writeFile(path, rawFile({ keep: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, mask: { dtype: 'BOOL', shape: [1], data_offsets: [4, 5] } }, data));
    const { tensors } = await readSafetensorsFile(path, (name) => name !== 'mask');
    expect([...tensors.keys()]).toEqual(['keep']);
    expect([...tensors.get('keep')!.data]).toEqual([2.5]);
    await expect(readSafetensorsFile(path)).rejects.toThrow(/BOOL/);
  });
});
