/** Content-addressed adapter blobs: the key is the SHA-256 of the bytes, so a put is idempotent by construction. */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { IntegrityError } from '../errors.js';
import type { BlobStore } from '../store.js';
import { checkBytes, checkSha256Hex } from '../validate.js';
import { asBuffer, type SqliteContext } from './context.js';

/** Adapters of the models Lethe trains are a few MiB; this bound catches a wrong buffer, not a real adapter. */
const MAX_BLOB_BYTES = 1 << 30;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class SqliteBlobs implements BlobStore {
  private readonly insert: Database.Statement;
  private readonly bytesOf: Database.Statement;
  private readonly exists: Database.Statement;

  constructor(private readonly ctx: SqliteContext) {
    const db = ctx.db;
    this.insert = db.prepare('INSERT INTO blobs (sha256, bytes, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    this.bytesOf = db.prepare('SELECT bytes FROM blobs WHERE sha256 = ?');
    this.exists = db.prepare('SELECT 1 FROM blobs WHERE sha256 = ?');
  }

  put(bytes: Uint8Array): Promise<{ sha256: string; created: boolean }> {
    return this.ctx.write('store a blob', () => {
      checkBytes(bytes, 'blob', { min: 0, max: MAX_BLOB_BYTES });
      const sha256 = sha256Hex(bytes);
      return ({
      sha256,
      created: this.insert.run(sha256, asBuffer(bytes), this.ctx.now()).changes === 1,
    });
    });
  }

  get(sha256: string): Promise<Uint8Array | undefined> {
    return this.ctx.read('read a blob', () => {
      checkSha256Hex(sha256, 'blob sha256');
      const row = this.bytesOf.get(sha256) as { bytes: Buffer } | undefined;
      if (row === undefined) return undefined;
      if (sha256Hex(row.bytes) !== sha256) throw new IntegrityError(`blob ${sha256} is corrupt: its bytes no longer match its hash`);
      return new Uint8Array(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength);
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
}
