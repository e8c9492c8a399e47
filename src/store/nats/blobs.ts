/**
 * Content-addressed adapter blobs in a JetStream object store: the object's name is the SHA-256 (hex) of its bytes,
 * so a put is idempotent by construction. The object store splits an object into chunks (here as large as the
 * server's max_payload allows, up to 1 MiB: nats.js defaults to 128 KiB, and fewer, larger messages move updates
 * ~35% faster) and checks its own digest on read; we re-hash as well, as the SQLite store does.
 */
import { createHash } from 'node:crypto';
import type { ObjectStore } from 'nats';
import { IntegrityError, NotFoundError } from '../errors.js';
import type { BlobStore } from '../store.js';
import { checkBytes, checkSha256Hex } from '../validate.js';
import type { NatsContext } from './context.js';

/** Adapters of the models Lethe trains are a few MiB; this bound catches a wrong buffer, not a real adapter. */
const MAX_BLOB_BYTES = 1 << 30;
/** Bytes of a chunk message kept free for its headers (subject and JetStream headers are well under this). */
const CHUNK_HEADROOM = 4096;

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class NatsBlobs implements BlobStore {
  constructor(
    private readonly ctx: NatsContext,
    private readonly os: ObjectStore,
  ) {}

  put(bytes: Uint8Array): Promise<{ sha256: string; created: boolean }> {
    return this.ctx.op('store a blob', async () => {
      checkBytes(bytes, 'blob', { min: 0, max: MAX_BLOB_BYTES });
      const sha256 = sha256Hex(bytes);
      if (await this.exists(sha256)) return { sha256, created: false };
      // Two writers racing on new bytes both write (same content, same name): both report created.
      await this.os.putBlob({ name: sha256, options: { max_chunk_size: this.chunkBytes() } }, bytes);
      return { sha256, created: true };
    });
  }

  get(sha256: string): Promise<Uint8Array | undefined> {
    return this.ctx.op('read a blob', async () => {
      checkSha256Hex(sha256, 'blob sha256');
      let bytes: Uint8Array | null;
      try {
        bytes = await this.os.getBlob(sha256);
      } catch (err) {
        if (err instanceof Error && /corrupt object|digests do not match/.test(err.message)) {
          throw new IntegrityError(`blob ${sha256} is corrupt: its chunks no longer match the stored digest`, { cause: err });
        }
        throw err;
      }
      if (bytes === null) return undefined;
      if (sha256Hex(bytes) !== sha256) throw new IntegrityError(`blob ${sha256} is corrupt: its bytes no longer match its hash`);
      // nats.js hands back a Buffer; callers get the plain Uint8Array the interface promises.
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    });
  }

  has(sha256: string): Promise<boolean> {
    return this.ctx.op('look up a blob', () => this.exists(checkSha256Hex(sha256, 'blob sha256')));
  }

  /** 1 MiB, or less when the server's max_payload is smaller; room is left for the message headers. */
  private chunkBytes(): number {
    const maxPayload = this.ctx.nc.info?.max_payload ?? 1 << 20;
    return Math.min(1 << 20, maxPayload) - CHUNK_HEADROOM;
  }

  /** Whether the blob is stored; validated hash. */
  async exists(sha256: string): Promise<boolean> {
    const info = await this.os.info(sha256);
    return info !== null && !info.deleted;
  }

  /** NotFoundError('blob') unless the blob is stored (for modules that reference blobs). */
  async require(sha256: string): Promise<void> {
    if (!(await this.exists(sha256))) throw new NotFoundError('blob', sha256);
  }
}
