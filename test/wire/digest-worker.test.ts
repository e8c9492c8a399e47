/** Running digests checked on a worker thread (src/wire/digest-worker.ts) by the tensor assembler. */
import { describe, expect, it } from 'vitest';
import { encodeTensors, TensorAssembler, type EncodedTensors } from '../../src/wire/codec.js';
import { WorkerDigestVerifier } from '../../src/wire/digest-worker.js';
import { ChunkError } from '../../src/wire/errors.js';

/** A 3.25 MiB payload in 1 MiB chunks (four, the last short). */
function sample(): EncodedTensors {
  const data = Float32Array.from({ length: 13 << 16 }, (_, i) => Math.sin(i) * 1e-3);
  return encodeTensors(new Map([['w', { shape: [data.length], data }]]));
}

/** The chunks with chunk `index`'s bytes changed and its running digest kept. */
function corrupted(encoded: EncodedTensors, index: number): EncodedTensors {
  return { ...encoded, chunks: encoded.chunks.map((c, i) => (i === index ? { ...c, data: Buffer.alloc(c.data.length, 7) } : c)) };
}

describe('digest worker', () => {
  const verifier = new WorkerDigestVerifier();
  const encoded = sample();

  it('digest worker – an intact payload is verified and assembled as on the event loop', async () => {
    // Prepare
    const assembler = new TensorAssembler(encoded.manifest, {}, verifier);
    // Execute
    for (const c of encoded.chunks) assembler.push(c);
    const tensors = assembler.finish();
    await assembler.verified();
    // Assert
    expect(Buffer.from(assembler.payload).equals(Buffer.concat(encoded.chunks.map((c) => c.data)))).toBe(true);
    expect(tensors.get('w')!.data.length).toBe(13 << 16);
  });

  it('digest worker – a chunk that does not match its running digest fails verified() with chunk_hash_mismatch, naming it', async () => {
    // Prepare
    const assembler = new TensorAssembler(encoded.manifest, {}, verifier);
    // Execute
    for (const c of corrupted(encoded, 2).chunks) assembler.push(c);
    assembler.finish(); // the claimed digests add up: only hashing the bytes finds the corruption
    const result = assembler.verified();
    // Assert
    await expect(result).rejects.toThrow(ChunkError);
    await expect(result).rejects.toMatchObject({ code: 'chunk_hash_mismatch', message: expect.stringContaining('chunk 2') });
  });

  it('digest worker – once a mismatch is known, the next push fails with it', async () => {
    // Prepare
    const bad = corrupted(encoded, 0);
    const assembler = new TensorAssembler(encoded.manifest, {}, verifier);
    assembler.push(bad.chunks[0]!);
    // Execute: the worker's answer arrives while the next message is awaited.
    await expect(assembler.verified()).rejects.toThrow(ChunkError);
    // Assert
    expect(() => assembler.push(bad.chunks[1]!)).toThrow(/chunk 0 does not match its running sha256/);
    assembler.abandon();
  });

  it('digest worker – payloads verified at once do not mix up their hashes', async () => {
    // Prepare
    const good = new TensorAssembler(encoded.manifest, {}, verifier);
    const bad = new TensorAssembler(encoded.manifest, {}, verifier);
    // Execute: interleaved chunk by chunk
    const broken = corrupted(encoded, 3);
    encoded.chunks.forEach((c, i) => {
      good.push(c);
      bad.push(broken.chunks[i]!);
    });
    good.finish();
    bad.finish();
    // Assert
    await expect(good.verified()).resolves.toBeUndefined();
    await expect(bad.verified()).rejects.toMatchObject({ code: 'chunk_hash_mismatch' });
  });
});
