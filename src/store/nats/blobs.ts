/**
 * Content-addressed adapter blobs in a JetStream object store: the object's name is the SHA-256 (hex) of its bytes,
 * so a put is idempotent by construction.
 *
 * The bytes are written and read here in the object store's own format (chunks on `$O.<bucket>.C.<nuid>`, then one
 * rolled-up metadata message on `$O.<bucket>.M.<name>` holding size, chunk count and "SHA-256=" digest), so nats.js
 * and the `nats object` tools read them as usual. We do not call nats.js putBlob/getBlob because they hash every byte
 * with a pure-JavaScript SHA-256 (~7× slower than node:crypto), twice per update on its way into the aggregator;
 * here the content hash we need anyway is the object's digest, and a read is verified once, by re-hashing, as the
 * SQLite store does. Chunks are as large as the server's max_payload allows, up to 1 MiB (nats.js: 128 KiB).
 */
import { createHash } from 'node:crypto';
import { consumerOpts, headers, nuid, type JetStreamClient, type ObjectStore } from 'nats';
import { IntegrityError, NotFoundError } from '../errors.js';
import type { BlobStore } from '../store.js';
import { checkBytes, checkSha256Hex } from '../validate.js';
import type { NatsContext } from './context.js';

/** Adapters of the models Lethe trains are a few MiB; this bound catches a wrong buffer, not a real adapter. */
const MAX_BLOB_BYTES = 1 << 30;
/** Bytes of a chunk message kept free for its headers (subject and JetStream headers are well under this). */
const CHUNK_HEADROOM = 4096;

function sha256Of(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** The object store's name encoding in subjects, and its digest field: base64url WITH padding. */
function paddedBase64Url(bytes: Uint8Array | string): string {
  const b64 = Buffer.from(bytes).toString('base64');
  return b64.replace(/\+/g, '-').replace(/\//g, '_');
}

export class NatsBlobs implements BlobStore {
  private readonly js: JetStreamClient;

  constructor(
    private readonly ctx: NatsContext,
    private readonly os: ObjectStore,
    /** The object store's bucket name (`<prefix>_blobs`). */
    private readonly bucket: string,
    /** How long (ms) one JetStream publish may take. */
    private readonly timeoutMs: number,
  ) {
    this.js = ctx.nc.jetstream({ timeout: timeoutMs });
  }

  put(bytes: Uint8Array): Promise<{ sha256: string; created: boolean }> {
    return this.ctx.op('store a blob', async () => {
      checkBytes(bytes, 'blob', { min: 0, max: MAX_BLOB_BYTES });
      const digest = sha256Of(bytes);
      const sha256 = digest.toString('hex');
      if (await this.exists(sha256)) return { sha256, created: false };
      // Two writers racing on new bytes both write (same content, same name): both report created.
      await this.write(sha256, bytes, digest);
      return { sha256, created: true };
    });
  }

  get(sha256: string): Promise<Uint8Array | undefined> {
    return this.ctx.op('read a blob', async () => {
      checkSha256Hex(sha256, 'blob sha256');
      const info = await this.os.info(sha256);
      if (info === null || info.deleted) return undefined;
      const bytes = info.size === 0 ? new Uint8Array(0) : await this.readChunks(info.nuid, info.size);
      if (bytes.length !== info.size || sha256Of(bytes).toString('hex') !== sha256) {
        throw new IntegrityError(`blob ${sha256} is corrupt: its bytes no longer match its hash`);
      }
      return bytes;
    });
  }

  has(sha256: string): Promise<boolean> {
    return this.ctx.op('look up a blob', () => this.exists(checkSha256Hex(sha256, 'blob sha256')));
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

  /** Chunks first (all acknowledged), then the metadata that makes them the object; a failure purges the chunks. */
  private async write(name: string, bytes: Uint8Array, digest: Buffer): Promise<void> {
    const id = nuid.next();
    const chunkSubject = `$O.${this.bucket}.C.${id}`;
    const chunk = Math.min(1 << 20, this.ctx.nc.info?.max_payload ?? 1 << 20) - CHUNK_HEADROOM;
    let chunks = 0;
    try {
      const acks: Promise<unknown>[] = [];
      for (let offset = 0; offset < bytes.length; offset += chunk, chunks++) {
        acks.push(this.js.publish(chunkSubject, bytes.subarray(offset, Math.min(bytes.length, offset + chunk))));
      }
      await Promise.all(acks);
      const meta = {
        name,
        options: { max_chunk_size: chunk },
        bucket: this.bucket,
        nuid: id,
        size: bytes.length,
        chunks,
        mtime: new Date(this.ctx.now()).toISOString(),
        digest: `SHA-256=${paddedBase64Url(digest)}`,
        deleted: false,
      };
      const h = headers();
      h.set('Nats-Rollup', 'sub'); // the metadata subject keeps only this message
      await this.js.publish(`$O.${this.bucket}.M.${paddedBase64Url(name)}`, new TextEncoder().encode(JSON.stringify(meta)), { headers: h });
    } catch (err) {
      const jsm = await this.js.jetstreamManager();
      await jsm.streams.purge(`OBJ_${this.bucket}`, { filter: chunkSubject }).catch(() => undefined);
      throw err;
    }
  }

  /** The object's chunks in order, through an ordered consumer, concatenated. */
  private async readChunks(id: string, size: number): Promise<Uint8Array> {
    const options = consumerOpts();
    options.orderedConsumer();
    const sub = await this.js.subscribe(`$O.${this.bucket}.C.${id}`, options);
    const out = Buffer.allocUnsafe(size);
    let offset = 0;
    // Chunks that never come (purged under a live object) end the read; the size check below refuses the result.
    let watchdog = setTimeout(() => sub.unsubscribe(), this.timeoutMs);
    try {
      for await (const m of sub) {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => sub.unsubscribe(), this.timeoutMs);
        if (offset + m.data.length > size) break; // more bytes than the metadata says: the hash check refuses it
        out.set(m.data, offset);
        offset += m.data.length;
        if (m.info.pending === 0) break;
      }
    } finally {
      clearTimeout(watchdog);
      sub.unsubscribe();
    }
    return new Uint8Array(out.buffer, out.byteOffset, offset);
  }
}
