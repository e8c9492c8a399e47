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
 *
 * Reads are direct gets (the stream allows them): one for the metadata, one per chunk, answered with the raw bytes.
 * nats.js's info() and ordered consumer cost four to six requests per object and a base64 JSON envelope, which is
 * most of what closing a round of a thousand small updates cost. The metadata written here also lists the stream
 * sequence of each chunk (`chunk_seqs`, a field other readers ignore), so a read asks for a window of chunks at once
 * instead of walking them one round trip after another; objects written by other tools are walked. readAhead()
 * starts verified reads of blobs about to be asked for (a round's updates, listed by NatsUpdates.list) a few at a
 * time, so the aggregator's one-by-one gets find them in memory instead of waiting for each read in turn.
 *
 * Integrity: every byte read from JetStream is hashed against its name before it is returned. The exception, as in
 * the SQLite store, is a bounded cache of what this coordinator hashed itself moments before: what a writer was given
 * with its hash (an upload verified with its running digest) and what put stored. The leader aggregates its own
 * uploads, and reads the adapters it stored, without reading them back.
 */
import { createHash } from 'node:crypto';
import { Empty, headers, nuid, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import { joinPieces } from '../blob-writer.js';
import { IntegrityError, InvalidArgumentError, NotFoundError, StoreClosedError, StoreIOError } from '../errors.js';
import type { BlobStore, BlobWriter } from '../store.js';
import { checkBytes, checkInt, checkSha256Hex } from '../validate.js';
import { BlobCache } from '../blob-cache.js';
import { ChunkPublisher } from './chunk-publisher.js';
import type { NatsContext } from './context.js';
import { isWrongLastSequence } from './errors.js';

/** Adapters of the models Lethe trains are a few MiB; this bound catches a wrong buffer, not a real adapter. */
const MAX_BLOB_BYTES = 1 << 30;
/** Bytes of a chunk message kept free for its headers (subject and JetStream headers are well under this). */
const CHUNK_HEADROOM = 4096;

/** An object chunk's size on `nc`: as large as the server's max_payload allows, up to 1 MiB, less room for headers. */
export function chunkBytesOn(nc: Pick<NatsConnection, 'info'>): number {
  return Math.min(1 << 20, nc.info?.max_payload ?? 1 << 20) - CHUNK_HEADROOM;
}

function sha256Of(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** The object store's name encoding in subjects, and its digest field: base64url WITH padding. */
function paddedBase64Url(bytes: Uint8Array | string): string {
  const b64 = Buffer.from(bytes).toString('base64');
  return b64.replace(/\+/g, '-').replace(/\//g, '_');
}

/** The fields of an object's metadata message that a read needs. */
interface ObjectMeta {
  readonly nuid: string;
  readonly size: number;
  readonly chunks: number;
  readonly deleted?: boolean;
  /** Stream sequence of each chunk, in order (objects written by this store; absent in others). */
  readonly chunk_seqs?: readonly number[];
}

/** Chunk reads of one object in flight at most: a window of ~1 MiB replies, as for writes. */
export const CHUNK_READS_IN_FLIGHT = 8;

/** How many blobs readAhead reads at once, and how many bytes it may hold that nobody has asked for yet. */
export interface ReadAheadConfig {
  readonly concurrency: number;
  readonly maxBytes: number;
  /** A read-ahead blob nobody asks for within this many ms is dropped (its round closed elsewhere, or failed). */
  readonly keepMs: number;
}

export const DEFAULT_READ_AHEAD: ReadAheadConfig = Object.freeze({ concurrency: 16, maxBytes: 256 << 20, keepMs: 30_000 });

export class NatsBlobs implements BlobStore {
  private readonly js: JetStreamClient;
  private readonly jsm: Promise<JetStreamManager>;
  private readonly stream: string;
  /** Read-ahead: blobs being read or read, not yet asked for; the blobs waiting to be started, with when they were asked. */
  private readonly ahead = new Map<string, { readonly read: Promise<Uint8Array | undefined>; bytes: number; taken: boolean; expiry?: NodeJS.Timeout }>();
  private readonly queued = new Map<string, number>();
  private reading = 0;
  private held = 0;
  /** Bytes a writer was given with their hash moments ago (an upload this coordinator verified), by hash. */
  private readonly recent: BlobCache;

  constructor(
    private readonly ctx: NatsContext,
    /** The object store's bucket name (`<prefix>_blobs`). */
    private readonly bucket: string,
    /** How long (ms) one JetStream publish may take. */
    private readonly timeoutMs: number,
    private readonly readAheadConfig: ReadAheadConfig = DEFAULT_READ_AHEAD,
  ) {
    this.js = ctx.nc.jetstream({ timeout: timeoutMs });
    this.jsm = this.js.jetstreamManager(false);
    this.stream = `OBJ_${bucket}`;
    this.recent = new BlobCache(readAheadConfig.maxBytes);
  }

  put(bytes: Uint8Array): Promise<{ sha256: string; created: boolean }> {
    return this.ctx.op('store a blob', async () => {
      checkBytes(bytes, 'blob', { min: 0, max: MAX_BLOB_BYTES });
      const digest = sha256Of(bytes);
      const sha256 = digest.toString('hex');
      if ((await this.info(sha256)) !== undefined) return { sha256, created: false };
      // Two writers racing on new bytes both write (same content, same name): both report created.
      await this.write(sha256, bytes, digest);
      // A copy (the caller may reuse its buffer), so that reading back what this coordinator just stored, such as a
      // run's first adapter at its first round's close, costs no JetStream reads and no second hash.
      this.recent.set(sha256, new Uint8Array(bytes));
      return { sha256, created: true };
    });
  }

  get(sha256: string): Promise<Uint8Array | undefined> {
    return this.ctx.op('read a blob', async () => this.recent.get(checkSha256Hex(sha256, 'blob sha256')) ?? this.take(sha256) ?? this.read(sha256));
  }

  has(sha256: string): Promise<boolean> {
    return this.ctx.op('look up a blob', async () => (await this.info(checkSha256Hex(sha256, 'blob sha256'))) !== undefined);
  }

  /**
   * A streaming put: each ~1 MiB chunk is published as soon as its bytes are in, so the JetStream write overlaps the
   * upload, and commit writes the metadata under the caller's hash (bytes hashed once). A blob already stored under
   * that hash keeps its object and the new chunks are purged.
   */
  writer(totalBytes: number): BlobWriter {
    checkInt(totalBytes, 'blob size', 0);
    if (totalBytes > MAX_BLOB_BYTES) throw new InvalidArgumentError(`blob size must be 0-${MAX_BLOB_BYTES} bytes, got ${totalBytes}`);
    const id = nuid.next();
    const subject = `$O.${this.bucket}.C.${id}`;
    const chunk = chunkBytesOn(this.ctx.nc);
    const chunks = this.publisher(subject);
    let pieces: Uint8Array[] = [];
    const all: Uint8Array[] = [];
    let buffered = 0;
    let written = 0;
    /** Publishes every whole chunk gathered (and the tail too when `all`), keeping the rest for the next write. */
    const flush = (all: boolean): void => {
      const bytes = joinPieces(pieces);
      let offset = 0;
      for (; bytes.length - offset >= chunk || (all && offset < bytes.length); offset += chunk) {
        chunks.publish(bytes.subarray(offset, Math.min(bytes.length, offset + chunk)));
      }
      const rest = bytes.subarray(Math.min(offset, bytes.length));
      pieces = rest.length > 0 ? [rest] : [];
      buffered = rest.length;
    };
    const purge = async (): Promise<void> => {
      await chunks.cancel();
      if (chunks.count > 0) await (await this.jsm).streams.purge(this.stream, { filter: subject }).catch(() => undefined);
    };
    return {
      write: (bytes) => {
        if (written + bytes.byteLength > totalBytes) throw new InvalidArgumentError(`blob writer got more than the ${totalBytes} bytes announced`);
        written += bytes.byteLength;
        pieces.push(bytes);
        all.push(bytes);
        buffered += bytes.byteLength;
        if (buffered >= chunk) flush(false);
      },
      commit: (sha256) =>
        this.ctx.op('store a blob', async () => {
          checkSha256Hex(sha256, 'blob sha256');
          if (written !== totalBytes) throw new InvalidArgumentError(`blob writer got ${written} of the ${totalBytes} bytes announced`);
          flush(true);
          let created = true;
          try {
            await chunks.settled();
            // Only if no metadata is there yet, so a new blob costs no lookup; a live object of the name wins.
            if (!(await this.publishMeta(sha256, id, written, chunks.seqs, chunk, Buffer.from(sha256, 'hex'), 'absent'))) {
              if ((await this.info(sha256)) === undefined) {
                await this.publishMeta(sha256, id, written, chunks.seqs, chunk, Buffer.from(sha256, 'hex'), 'replace'); // a deleted object's name
              } else created = false;
            }
          } catch (err) {
            await purge();
            throw err;
          }
          if (!created) await purge(); // the same bytes are stored already: keep that object
          this.recent.set(sha256, joinPieces(all));
          return { sha256, created };
        }),
      abort: () => purge(),
    };
  }

  /** NotFoundError('blob') unless the blob is stored (for modules that reference blobs); validated hash. */
  async require(sha256: string): Promise<void> {
    if ((await this.info(sha256)) === undefined) throw new NotFoundError('blob', sha256);
  }

  /**
   * Starts reading these blobs, in order, a few at a time and up to a byte budget, so that gets of them soon after
   * find them read and verified; each is handed to one get and then forgotten. Best effort: a read that fails is
   * dropped and its get reads again (and reports the error). Validated hashes.
   */
  readAhead(sha256s: readonly string[]): void {
    const now = Date.now();
    for (const sha of sha256s) if (!this.ahead.has(sha) && !this.queued.has(sha) && this.recent.get(sha) === undefined) this.queued.set(sha, now);
    this.startReads();
  }

  private startReads(): void {
    const { concurrency, maxBytes, keepMs } = this.readAheadConfig;
    for (const [sha, askedAt] of this.queued) {
      if (this.reading >= concurrency || this.held >= maxBytes || this.ctx.isClosed) return;
      this.queued.delete(sha);
      if (Date.now() - askedAt > keepMs) continue; // asked for long ago and never taken: nobody wants it now
      this.reading++;
      const entry: { read: Promise<Uint8Array | undefined>; bytes: number; taken: boolean; expiry?: NodeJS.Timeout } = { read: this.read(sha), bytes: 0, taken: false };
      this.ahead.set(sha, entry);
      entry.read.then(
        (bytes) => {
          if (entry.taken) return;
          entry.bytes = bytes?.byteLength ?? 0;
          this.held += entry.bytes;
          entry.expiry = setTimeout(() => this.take(sha), keepMs).unref();
        },
        () => this.ahead.get(sha) === entry && this.ahead.delete(sha),
      ).finally(() => {
        this.reading--;
        this.startReads();
      });
    }
  }

  /** The read-ahead read of `sha256`, now the caller's (undefined when none was started). */
  private take(sha256: string): Promise<Uint8Array | undefined> | undefined {
    this.queued.delete(sha256); // asked for before its turn came: the caller reads it now, not twice
    const entry = this.ahead.get(sha256);
    if (entry === undefined) return undefined;
    this.ahead.delete(sha256);
    entry.taken = true;
    clearTimeout(entry.expiry);
    this.held -= entry.bytes;
    this.startReads();
    return entry.read;
  }

  /** The object's metadata, or undefined when no (live) object has that name. */
  private async info(name: string): Promise<ObjectMeta | undefined> {
    const m = await this.direct({ last_by_subj: `$O.${this.bucket}.M.${paddedBase64Url(name)}` });
    const meta = m && (JSON.parse(new TextDecoder().decode(m.data)) as ObjectMeta);
    return meta === undefined || meta.deleted === true ? undefined : meta;
  }

  /** The bytes, verified against their name; undefined when absent. */
  private async read(sha256: string): Promise<Uint8Array | undefined> {
    const meta = await this.info(sha256);
    if (meta === undefined) return undefined;
    const hash = createHash('sha256');
    const bytes = meta.size === 0 ? new Uint8Array(0) : await this.readChunks(meta, hash);
    if (bytes.length !== meta.size || hash.digest('hex') !== sha256) {
      throw new IntegrityError(`blob ${sha256} is corrupt: its bytes no longer match its hash`);
    }
    return bytes;
  }

  /**
   * One stream message by direct get ($JS.API.DIRECT.GET, the JetStream API nats.js's KV reads use; its
   * JetStreamManager does not expose it), or undefined when there is none. The reply is the raw message, its stream
   * sequence in a header, or an empty reply with a status (404: no such message).
   */
  private async direct(query: { last_by_subj: string } | { seq: number; next_by_subj?: string }): Promise<{ data: Uint8Array; seq: number; subject: string } | undefined> {
    const api = `$JS.API.DIRECT.GET.${this.stream}`;
    const m =
      'last_by_subj' in query
        ? await this.ctx.nc.request(`${api}.${query.last_by_subj}`, Empty, { timeout: this.timeoutMs })
        : await this.ctx.nc.request(api, new TextEncoder().encode(JSON.stringify(query)), { timeout: this.timeoutMs });
    const status = m.headers?.code ?? 0;
    if (m.data.length === 0 && status >= 300) {
      if (status === 404) return undefined;
      throw new StoreIOError(`read from stream ${this.stream}`, { cause: new Error(`direct get answered ${status} ${m.headers?.description ?? ''}`.trim()) });
    }
    return { data: m.data, seq: Number(m.headers?.get('Nats-Sequence') ?? 0), subject: m.headers?.get('Nats-Subject') ?? '' };
  }

  /** Chunks first (all acknowledged), then the metadata that makes them the object; a failure purges the chunks. */
  private async write(name: string, bytes: Uint8Array, digest: Buffer): Promise<void> {
    const id = nuid.next();
    const chunkSubject = `$O.${this.bucket}.C.${id}`;
    const chunk = chunkBytesOn(this.ctx.nc);
    const chunks = this.publisher(chunkSubject);
    try {
      for (let offset = 0; offset < bytes.length; offset += chunk) chunks.publish(bytes.subarray(offset, Math.min(bytes.length, offset + chunk)));
      await chunks.settled();
      await this.publishMeta(name, id, bytes.length, chunks.seqs, chunk, digest);
    } catch (err) {
      await chunks.cancel();
      const jsm = await this.jsm;
      await jsm.streams.purge(this.stream, { filter: chunkSubject }).catch(() => undefined);
      throw err;
    }
  }

  /** Publishes an object's chunks on `subject`, a few awaiting acknowledgement at a time. */
  private publisher(subject: string): ChunkPublisher {
    return new ChunkPublisher(this.js, subject, () => (this.ctx.isClosed ? new StoreClosedError('store a blob') : undefined));
  }

  /**
   * The metadata message that makes acknowledged chunks the object `name`, replacing any earlier one, or with 'absent'
   * only if the name has no metadata message yet (false when it has: nothing was written).
   */
  private async publishMeta(name: string, id: string, size: number, seqs: readonly number[], chunk: number, digest: Buffer, mode: 'absent' | 'replace' = 'replace'): Promise<boolean> {
    const meta = {
      name,
      options: { max_chunk_size: chunk },
      bucket: this.bucket,
      nuid: id,
      size,
      chunks: seqs.length,
      chunk_seqs: seqs,
      mtime: new Date(this.ctx.now()).toISOString(),
      digest: `SHA-256=${paddedBase64Url(digest)}`,
      deleted: false,
    };
    const h = headers();
    h.set('Nats-Rollup', 'sub'); // the metadata subject keeps only this message
    const subject = `$O.${this.bucket}.M.${paddedBase64Url(name)}`;
    const data = new TextEncoder().encode(JSON.stringify(meta));
    try {
      await this.js.publish(subject, data, { headers: h, ...(mode === 'absent' ? { expect: { lastSubjectSequence: 0 } } : {}) });
      return true;
    } catch (err) {
      if (mode === 'absent' && isWrongLastSequence(err)) return false;
      throw err;
    }
  }

  /** The object's chunks in order, one direct get each, concatenated and fed to `hash` as they come. */
  private async readChunks(meta: ObjectMeta, hash: ReturnType<typeof createHash>): Promise<Uint8Array> {
    const subject = `$O.${this.bucket}.C.${meta.nuid}`;
    const seqs = meta.chunk_seqs;
    if (Array.isArray(seqs) && seqs.length === meta.chunks) return this.readChunksAt(subject, seqs, meta.size, hash);
    const out = Buffer.allocUnsafe(meta.size);
    let offset = 0;
    for (let i = 0, seq = 0; i < meta.chunks; i++) {
      const m = await this.direct({ seq: seq + 1, next_by_subj: subject });
      // A chunk missing (purged under a live object) or more bytes than the metadata says: the checks refuse it.
      if (m === undefined || offset + m.data.length > meta.size) break;
      out.set(m.data, offset);
      hash.update(m.data);
      offset += m.data.length;
      seq = m.seq;
    }
    return new Uint8Array(out.buffer, out.byteOffset, offset);
  }

  /**
   * The chunks at these stream sequences, a window of direct gets in flight, concatenated in order and fed to `hash`.
   * A chunk missing (purged) or not on the object's subject ends the bytes there, and the size check refuses them.
   */
  private async readChunksAt(subject: string, seqs: readonly number[], size: number, hash: ReturnType<typeof createHash>): Promise<Uint8Array> {
    // Replies not yet copied, oldest first; one is dropped once copied, so at most a window's bytes stay referenced.
    const replies: Promise<{ data: Uint8Array; subject: string } | undefined>[] = [];
    let next = 0;
    const start = (): void => {
      if (next < seqs.length) replies.push(this.direct({ seq: seqs[next++]! }));
    };
    for (let i = 0; i < CHUNK_READS_IN_FLIGHT; i++) start();
    const out = Buffer.allocUnsafe(size);
    let offset = 0;
    try {
      for (let i = 0; i < seqs.length; i++) {
        const m = await replies.shift()!;
        start();
        if (m === undefined || m.subject !== subject || offset + m.data.length > size) break;
        out.set(m.data, offset);
        hash.update(m.data);
        offset += m.data.length;
      }
    } finally {
      for (const r of replies) r.catch(() => undefined); // replies nobody waits for after a stop
    }
    return new Uint8Array(out.buffer, out.byteOffset, offset);
  }
}
