/**
 * Content-addressed blobs: the key is the SHA-256 of the bytes, so a put is idempotent by construction.
 *
 * Small blobs are rows. Blobs of FILE_BLOB_MIN_BYTES and more (updates, adapters) are files beside the database
 * (blob-files.ts) with a row that records their size, so references to blobs stay foreign keys either way. Writing a
 * large row cost more than receiving it: SQLite copies it into the WAL and again into the database file.
 *
 * Integrity: every byte read from disk is hashed against its address before it is returned (IntegrityError if not).
 * The exception is the cache (../blob-cache.ts) of bytes this process itself hashed moments before: what a writer was
 * given with its hash (the coordinator's verified running digest), what put hashed, and what get verified.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { joinPieces } from '../blob-writer.js';
import { IntegrityError, InvalidArgumentError } from '../errors.js';
import type { BlobStore, BlobWriter } from '../store.js';
import { checkBytes, checkSha256Hex } from '../validate.js';
import { BlobCache } from '../blob-cache.js';
import { BlobDir, type TempBlobFile } from './blob-files.js';
import { asBuffer, type SqliteContext } from './context.js';

/** Adapters of the models Lethe trains are a few MiB; this bound catches a wrong buffer, not a real adapter. */
const MAX_BLOB_BYTES = 1 << 30;
/** From this size on a blob is a file: a row commits faster than a file's fsyncs, a file writes faster than a large row. */
export const FILE_BLOB_MIN_BYTES = 256 << 10;
const NO_BYTES = Buffer.alloc(0);

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

interface BlobRow {
  readonly bytes: Buffer;
  /** Size of the blob's file; null for a blob held in the row. */
  readonly file_bytes: number | null;
}

export class SqliteBlobs implements BlobStore {
  private readonly insert: Database.Statement;
  private readonly rowOf: Database.Statement;
  private readonly exists: Database.Statement;
  private readonly fileRows: Database.Statement;
  private readonly dir: BlobDir;
  private readonly cache: BlobCache;

  /** `dir` holds the blob files; `cacheBytes` bounds the cache of recently hashed ones. */
  constructor(
    private readonly ctx: SqliteContext,
    dir: string,
    cacheBytes: number,
  ) {
    const db = ctx.db;
    this.insert = db.prepare('INSERT INTO blobs (sha256, bytes, created_at, file_bytes) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING');
    this.rowOf = db.prepare('SELECT bytes, file_bytes FROM blobs WHERE sha256 = ?');
    this.exists = db.prepare('SELECT 1 FROM blobs WHERE sha256 = ?');
    this.fileRows = db.prepare('SELECT sha256, file_bytes FROM blobs WHERE file_bytes IS NOT NULL');
    this.dir = new BlobDir(dir);
    this.cache = new BlobCache(cacheBytes);
  }

  put(bytes: Uint8Array): Promise<{ sha256: string; created: boolean }> {
    try {
      checkBytes(bytes, 'blob', { min: 0, max: MAX_BLOB_BYTES });
    } catch (err) {
      return Promise.reject(err);
    }
    if (bytes.byteLength < FILE_BLOB_MIN_BYTES) {
      return this.ctx.write('store a blob', () => {
        const sha256 = sha256Hex(bytes);
        return { sha256, created: this.insert.run(sha256, asBuffer(bytes), this.ctx.now(), null).changes === 1 };
      });
    }
    const writer = this.writer(bytes.byteLength);
    // A copy, because the caller may reuse its buffer once put resolves while the cache keeps what was written.
    writer.write(Buffer.from(bytes));
    return writer.commit(sha256Hex(bytes));
  }

  writer(totalBytes: number): BlobWriter {
    if (!Number.isSafeInteger(totalBytes) || totalBytes < 0 || totalBytes > MAX_BLOB_BYTES) {
      throw new InvalidArgumentError(`blob size must be 0-${MAX_BLOB_BYTES} bytes, got ${totalBytes}`);
    }
    return totalBytes < FILE_BLOB_MIN_BYTES ? new RowWriter(this, totalBytes) : new FileWriter(this, totalBytes, this.dir.createTemp());
  }

  async get(sha256: string): Promise<Uint8Array | undefined> {
    const row = await this.ctx.read('read a blob', () => {
      checkSha256Hex(sha256, 'blob sha256');
      return this.rowOf.get(sha256) as BlobRow | undefined;
    });
    if (row === undefined) return undefined;
    if (row.file_bytes === null) return verified(sha256, row.bytes);
    const cached = this.cache.get(sha256);
    if (cached) return cached;
    const bytes = await this.readFile(sha256, row.file_bytes);
    this.cache.set(sha256, bytes);
    return bytes;
  }

  /** Reads every blob file back and hashes it (the scrub behind SqliteStore.checkIntegrity); IntegrityError on the first bad one. */
  async verifyFiles(): Promise<void> {
    const files = await this.ctx.read('list blob files', () => this.fileRows.all() as { sha256: string; file_bytes: number }[]);
    for (const f of files) await this.readFile(f.sha256, f.file_bytes);
  }

  private readFile(sha256: string, size: number): Promise<Uint8Array> {
    return this.ctx.io('read a blob file', async () => {
      const bytes = await this.dir.read(sha256);
      if (bytes === undefined) throw new IntegrityError(`blob ${sha256} is missing its file ${this.dir.fileOf(sha256)}`);
      if (bytes.byteLength !== size) throw new IntegrityError(`blob file ${this.dir.fileOf(sha256)} has ${bytes.byteLength} bytes, not ${size}`);
      return verified(sha256, bytes);
    });
  }

  has(sha256: string): Promise<boolean> {
    return this.ctx.read('look up a blob', () => {
      checkSha256Hex(sha256, 'blob sha256');
      return this.exists.get(sha256) !== undefined;
    });
  }

  /** For modules that reference blobs: NotFound-style check inside their own transaction. */
  existsNow(sha256: string): boolean {
    return this.exists.get(sha256) !== undefined;
  }

  /** Records a blob held in its row (`bytes`) or in its file (`fileBytes`); writers call this last. */
  record(sha256: string, bytes: Uint8Array, fileBytes: number | null): Promise<boolean> {
    return this.ctx.write('store a blob', () => this.insert.run(sha256, asBuffer(bytes), this.ctx.now(), fileBytes).changes === 1);
  }

  /** What the file writer needs of the store it writes for. */
  files(): { readonly dir: BlobDir; readonly cache: BlobCache; readonly ctx: SqliteContext } {
    return { dir: this.dir, cache: this.cache, ctx: this.ctx };
  }
}

function verified(sha256: string, bytes: Buffer): Uint8Array {
  if (sha256Hex(bytes) !== sha256) throw new IntegrityError(`blob ${sha256} is corrupt: its bytes no longer match its hash`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Common bookkeeping: pieces, their total against the announced size, and commit/abort happening once. */
abstract class PieceWriter implements BlobWriter {
  protected readonly pieces: Uint8Array[] = [];
  protected written = 0;
  private done = false;

  constructor(
    protected readonly blobs: SqliteBlobs,
    protected readonly totalBytes: number,
  ) {}

  write(bytes: Uint8Array): void {
    if (this.done) throw new InvalidArgumentError('blob writer already committed or aborted');
    if (this.written + bytes.byteLength > this.totalBytes) {
      throw new InvalidArgumentError(`blob writer got more than the ${this.totalBytes} bytes announced`);
    }
    this.pieces.push(bytes);
    this.written += bytes.byteLength;
    this.accept(bytes);
  }

  async commit(sha256: string): Promise<{ sha256: string; created: boolean }> {
    this.finishOnce();
    try {
      checkSha256Hex(sha256, 'blob sha256');
      if (this.written !== this.totalBytes) throw new InvalidArgumentError(`blob writer got ${this.written} of the ${this.totalBytes} bytes announced`);
      return { sha256, created: await this.store(sha256) };
    } catch (err) {
      await this.drop();
      throw err;
    }
  }

  abort(): Promise<void> {
    this.finishOnce();
    return this.drop();
  }

  private finishOnce(): void {
    if (this.done) throw new InvalidArgumentError('blob writer already committed or aborted');
    this.done = true;
  }

  protected abstract accept(bytes: Uint8Array): void;
  protected abstract store(sha256: string): Promise<boolean>;
  protected abstract drop(): Promise<void>;
}

/** A small blob: the pieces become its row. */
class RowWriter extends PieceWriter {
  protected accept(): void {}

  protected store(sha256: string): Promise<boolean> {
    return this.blobs.record(sha256, joinPieces(this.pieces), null);
  }

  protected drop(): Promise<void> {
    return Promise.resolve();
  }
}

/** A large blob: pieces go to a temporary file as they come; commit makes it durable, names it and records it. */
class FileWriter extends PieceWriter {
  constructor(
    blobs: SqliteBlobs,
    totalBytes: number,
    private readonly temp: TempBlobFile,
  ) {
    super(blobs, totalBytes);
  }

  protected accept(bytes: Uint8Array): void {
    this.temp.write(bytes);
  }

  protected async store(sha256: string): Promise<boolean> {
    const { dir, cache, ctx } = this.blobs.files();
    const known = await ctx.io('write a blob file', async () => {
      if (this.blobs.existsNow(sha256)) return true;
      await this.temp.finish(dir.fileOf(sha256));
      await dir.sync();
      return false;
    });
    if (known) {
      await this.temp.discard();
      return false;
    }
    const created = await this.blobs.record(sha256, NO_BYTES, this.totalBytes);
    cache.set(sha256, joinPieces(this.pieces));
    return created;
  }

  protected drop(): Promise<void> {
    return this.temp.discard();
  }
}
