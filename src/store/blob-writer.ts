/** Streaming blob writes on any BlobStore: its own writer when it has one, else pieces gathered and stored by `put`. */
import { createHash } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import { IntegrityError } from './errors.js';
import type { BlobStore, BlobWriter } from './store.js';

export function openBlobWriter(blobs: BlobStore, totalBytes: number): BlobWriter {
  return blobs.writer?.(totalBytes) ?? new BufferedBlobWriter(blobs);
}

/** Bytes putOwned hashes between turns of the event loop. */
const HASH_SLICE_BYTES = 4 << 20;

/**
 * Stores bytes that the caller hands over and never modifies again (a freshly aggregated adapter). Unlike `put`, which
 * copies because its caller may reuse the buffer, the store may keep these very bytes in its cache; and they are
 * hashed while the store is already writing them. The hashing yields to the event loop every few MiB: the store opens
 * its file and issues its writes from I/O callbacks, which one long hash would hold back until it ended (a 57 MB
 * adapter was hashed in 40–49 ms, then written in 26–40).
 */
export async function putOwned(blobs: BlobStore, bytes: Uint8Array): Promise<{ sha256: string; created: boolean }> {
  const writer = openBlobWriter(blobs, bytes.byteLength);
  writer.write(bytes);
  const hash = createHash('sha256');
  for (let at = 0; at < bytes.byteLength; at += HASH_SLICE_BYTES) {
    hash.update(bytes.subarray(at, at + HASH_SLICE_BYTES));
    await setImmediate();
  }
  return writer.commit(hash.digest('hex'));
}

/** Gathers the pieces and stores them with `put`, which hashes them again; a different hash is an IntegrityError. */
class BufferedBlobWriter implements BlobWriter {
  private pieces: Uint8Array[] = [];

  constructor(private readonly blobs: BlobStore) {}

  write(bytes: Uint8Array): void {
    this.pieces.push(bytes);
  }

  async commit(sha256: string): Promise<{ sha256: string; created: boolean }> {
    const stored = await this.blobs.put(joinPieces(this.pieces));
    this.pieces = [];
    if (stored.sha256 !== sha256) throw new IntegrityError(`blob hashed to ${stored.sha256}, not to ${sha256} as its writer said`);
    return stored;
  }

  abort(): Promise<void> {
    this.pieces = [];
    return Promise.resolve();
  }
}

/** The pieces as one byte array: a view, not a copy, when they lie back to back in one buffer (as an assembler's do). */
export function joinPieces(pieces: readonly Uint8Array[]): Uint8Array {
  const [first] = pieces;
  if (first === undefined) return new Uint8Array(0);
  let end = first.byteOffset + first.byteLength;
  for (const p of pieces.slice(1)) {
    if (p.buffer !== first.buffer || p.byteOffset !== end) return Buffer.concat(pieces);
    end += p.byteLength;
  }
  return new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset);
}
