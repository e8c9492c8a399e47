import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hostTensor, type HostTensor } from '../../src/tensors/host.js';
import { decodeTensors, encodeTensors, TensorAssembler, type WireChunk, type WireManifest } from '../../src/wire/codec.js';
import { ChunkError, LimitError, ManifestError, NonFiniteTensorError, PayloadError } from '../../src/wire/errors.js';

/** Deterministic, non-trivial float values (every byte position varies). */
function ramp(shape: number[], seed: number): HostTensor {
  const t = hostTensor(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] = Math.sin(seed * 1000 + i) * (i + 1);
  return t;
}

function sample(): Map<string, HostTensor> {
  return new Map([
    ['h.0.attn.c_attn.lora_B.weight', ramp([24, 4], 1)], // 384 bytes
    ['h.0.attn.c_attn.lora_A.weight', ramp([4, 8], 2)], // 128 bytes
    ['score.weight', ramp([3, 8], 3)], // 96 bytes
  ]);
}

function flipBit(chunks: readonly WireChunk[], index: number, byte: number): WireChunk[] {
  return chunks.map((c) => {
    if (c.index !== index) return c;
    const data = Uint8Array.from(c.data);
    data[byte]! ^= 0x10;
    return { ...c, data };
  });
}

/** Copies a chunk's bytes to an odd offset inside a larger buffer, as a protobuf decoder may hand them over. */
function atOddOffset(c: WireChunk): WireChunk {
  const backing = Buffer.alloc(c.data.length + 3);
  backing.set(c.data, 1);
  return { ...c, data: backing.subarray(1, 1 + c.data.length) };
}

describe('codec – round trip', () => {
  it('codec – several tensors with chunk boundaries inside tensors decode bit-exactly', () => {
    // Prepare: 100-byte chunks cut every tensor mid-way.
    const tensors = sample();
    // Execute
    const { manifest, chunks } = encodeTensors(tensors, { chunkBytes: 100 });
    const decoded = decodeTensors(manifest, chunks.map(atOddOffset));
    // Assert
    expect(manifest.totalBytes).toBe(608);
    expect(chunks).toHaveLength(7);
    expect(manifest.entries.map((e) => [e.name, e.byteOffset, e.byteLength])).toEqual([
      ['h.0.attn.c_attn.lora_B.weight', 0, 384],
      ['h.0.attn.c_attn.lora_A.weight', 384, 128],
      ['score.weight', 512, 96],
    ]);
    expect([...decoded.keys()]).toEqual([...tensors.keys()]);
    for (const [name, t] of tensors) {
      expect(decoded.get(name)!.shape).toEqual(t.shape);
      const got = decoded.get(name)!.data;
      expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(t.data.buffer))).toBe(true);
    }
  });

  it('codec – manifest sha256 is the plain SHA-256 of the payload, whatever the chunk size', () => {
    const tensors = sample();
    const small = encodeTensors(tensors, { chunkBytes: 7 });
    const whole = encodeTensors(tensors);
    const payload = Buffer.concat(whole.chunks.map((c) => c.data));
    expect(Buffer.from(small.manifest.sha256).equals(createHash('sha256').update(payload).digest())).toBe(true);
    expect(Buffer.from(whole.manifest.sha256).equals(Buffer.from(small.manifest.sha256))).toBe(true);
    expect(Buffer.from(small.chunks.at(-1)!.runningSha256).equals(Buffer.from(small.manifest.sha256))).toBe(true);
  });

  it('codec – reads tensor data from views at odd positions of a shared buffer', () => {
    // Prepare: a Float32Array view that does not start at its buffer's beginning.
    const backing = new Float32Array(11).map((_, i) => i + 0.5);
    const view = backing.subarray(3, 9);
    const { manifest, chunks } = encodeTensors(new Map([['v', { shape: [2, 3], data: view }]]), { chunkBytes: 5 });
    // Execute
    const out = decodeTensors(manifest, chunks).get('v')!;
    // Assert
    expect([...out.data]).toEqual([3.5, 4.5, 5.5, 6.5, 7.5, 8.5]);
  });

  it('codec – result follows the expected order when the receiver names one', () => {
    const { manifest, chunks } = encodeTensors(sample());
    const expected = new Map<string, number[]>([
      ['score.weight', [3, 8]],
      ['h.0.attn.c_attn.lora_A.weight', [4, 8]],
      ['h.0.attn.c_attn.lora_B.weight', [24, 4]],
    ]);
    expect([...decodeTensors(manifest, chunks, { expected }).keys()]).toEqual([...expected.keys()]);
  });

  it('codec – an empty tensor map travels as an empty payload', () => {
    const { manifest, chunks } = encodeTensors(new Map());
    expect(chunks).toHaveLength(0);
    expect(decodeTensors(manifest, chunks).size).toBe(0);
  });
});

describe('codec – corruption and limits', () => {
  const encoded = encodeTensors(sample(), { chunkBytes: 100 });
  const { manifest, chunks } = encoded;

  function assemble(m: WireManifest, cs: readonly WireChunk[], limits = {}): unknown {
    try {
      decodeTensors(m, cs, limits);
    } catch (err) {
      return err;
    }
    return undefined;
  }

  it('codec – a flipped bit in any chunk is caught at that chunk', () => {
    for (const index of [0, 3, 6]) {
      const err = assemble(manifest, flipBit(chunks, index, 5));
      expect(err).toBeInstanceOf(ChunkError);
      expect((err as ChunkError).code).toBe('chunk_hash_mismatch');
      expect((err as ChunkError).message).toContain(`chunk ${index}`);
    }
  });

  it('codec – a wrong total hash in the manifest is caught', () => {
    const sha256 = Uint8Array.from(manifest.sha256);
    sha256[0]! ^= 1;
    const err = assemble({ ...manifest, sha256 }, chunks);
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as PayloadError).code).toBe('payload_hash_mismatch');
  });

  it('codec – a truncated payload is refused at finish', () => {
    const err = assemble(manifest, chunks.slice(0, -1));
    expect((err as PayloadError).code).toBe('payload_truncated');
  });

  it('codec – a chunk after the last byte is refused', () => {
    const extra = { index: chunks.length, data: new Uint8Array(4), runningSha256: new Uint8Array(32) };
    expect((assemble(manifest, [...chunks, extra]) as ChunkError).code).toBe('chunk_extra');
  });

  it('codec – a reordered or repeated chunk is refused', () => {
    expect((assemble(manifest, [chunks[0]!, chunks[2]!, chunks[1]!]) as ChunkError).code).toBe('chunk_out_of_order');
    expect((assemble(manifest, [chunks[0]!, chunks[0]!]) as ChunkError).code).toBe('chunk_out_of_order');
  });

  it('codec – a payload over the size limit is refused before any chunk', () => {
    const err = assemble(manifest, [], { maxTotalBytes: 600 });
    expect(err).toBeInstanceOf(LimitError);
    expect((err as LimitError).code).toBe('payload_too_large');
    expect((assemble(manifest, [], { maxTensors: 2 }) as LimitError).code).toBe('too_many_tensors');
    expect((assemble(manifest, chunks, { maxChunkBytes: 64 }) as LimitError).code).toBe('chunk_too_large');
  });

  it('codec – NaN and infinity are refused with the tensors named', () => {
    // Prepare: a hostile sender bypasses encodeTensors' own check by patching finite payload bytes.
    const clean = encodeTensors(new Map([['a', ramp([4], 1)], ['b', ramp([4], 2)], ['c', ramp([4], 3)]]));
    const payload = Buffer.from(clean.chunks[0]!.data);
    payload.writeFloatLE(Number.NaN, 0); // a[0]
    payload.writeFloatLE(Number.NEGATIVE_INFINITY, 40); // c[2]
    const sha256 = createHash('sha256').update(payload).digest();
    // Execute
    const err = assemble({ ...clean.manifest, sha256 }, [{ index: 0, data: payload, runningSha256: sha256 }]);
    // Assert
    expect(err).toBeInstanceOf(NonFiniteTensorError);
    expect((err as NonFiniteTensorError).tensors).toEqual(['a', 'c']);
    expect(() => encodeTensors(new Map([['x', hostTensor([2], new Float32Array([1, Number.POSITIVE_INFINITY]))]]))).toThrow(NonFiniteTensorError);
  });

  it('codec – a NaN split across two chunks is still found', () => {
    // Prepare: 3-byte chunks cut every float; the NaN in b straddles chunks 5 and 6.
    const payload = Buffer.alloc(24);
    payload.writeFloatLE(Number.NaN, 16);
    const sha = (end: number): Buffer => createHash('sha256').update(payload.subarray(0, end)).digest();
    const chunks: WireChunk[] = [];
    for (let at = 0; at < 24; at += 3) chunks.push({ index: chunks.length, data: payload.subarray(at, at + 3), runningSha256: sha(at + 3) });
    const manifest: WireManifest = {
      entries: [
        { name: 'a', shape: [4], dtype: 'f32', byteOffset: 0, byteLength: 16 },
        { name: 'b', shape: [2], dtype: 'f32', byteOffset: 16, byteLength: 8 },
      ],
      totalBytes: 24,
      sha256: sha(24),
    };
    // Execute
    const err = assemble(manifest, chunks);
    // Assert
    expect((err as NonFiniteTensorError).tensors).toEqual(['b']);
  });

  it('codec – manifests with a foreign dtype, a wrong length or a gap are refused', () => {
    const [first, ...rest] = manifest.entries;
    const withEntries = (entries: WireManifest['entries']): WireManifest => ({ ...manifest, entries });
    expect((assemble(withEntries([{ ...first!, dtype: 'f16' }, ...rest]), []) as ManifestError).code).toBe('dtype_unsupported');
    expect((assemble(withEntries([{ ...first!, shape: [24, 5] }, ...rest]), []) as ManifestError).code).toBe('manifest_invalid');
    expect((assemble(withEntries([first!, { ...rest[0]!, byteOffset: 388 }, rest[1]!]), []) as ManifestError).code).toBe('manifest_invalid');
    expect((assemble({ ...manifest, totalBytes: 612 }, []) as ManifestError).code).toBe('manifest_invalid');
  });

  it('codec – names and shapes other than the expected ones are refused', () => {
    const names = new Map<string, number[]>([['score.weight', [3, 8]]]);
    expect((assemble(manifest, chunks, { expected: names }) as ManifestError).code).toBe('name_mismatch');
    const shapes = new Map<string, number[]>([
      ['h.0.attn.c_attn.lora_B.weight', [4, 24]],
      ['h.0.attn.c_attn.lora_A.weight', [4, 8]],
      ['score.weight', [3, 8]],
    ]);
    const err = assemble(manifest, chunks, { expected: shapes }) as ManifestError;
    expect(err.code).toBe('shape_mismatch');
    expect(err.message).toContain('h.0.attn.c_attn.lora_B.weight');
  });

  it('codec – an assembler refuses all input after its first error', () => {
    const assembler = new TensorAssembler(manifest);
    expect(() => assembler.push(flipBit(chunks, 0, 0)[0]!)).toThrow(ChunkError);
    expect(() => assembler.push(chunks[0]!)).toThrow(PayloadError);
    expect(() => assembler.finish()).toThrow(PayloadError);
  });
});
