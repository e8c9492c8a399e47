/**
 * Large blobs as files, `<dir>/<sha256>`. A blob is written to a temporary file as its pieces arrive (positional
 * writes on libuv's pool, off the event loop), fdatasync'd, renamed to its content address and the directory
 * fsync'd; only then does its row commit (blobs.ts). So a file under a content address is always complete and on
 * stable storage, and a crash at any instant leaves at most a temporary file, which the next open removes.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** Pieces are written in batches of about this many bytes (or MAX_BATCH_PIECES): each write is a hand-off to the
 * thread pool, which on a busy machine can cost the event loop its time slice. */
const WRITE_BATCH_BYTES = 4 << 20;
const MAX_BATCH_PIECES = 64;
/** Writeback is started every this many bytes, so the final fdatasync of a large blob has little left to flush. */
const SYNC_EVERY_BYTES = 8 << 20;
const TEMP_PREFIX = '.tmp-';

export class BlobDir {
  constructor(readonly path: string) {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    removeAbandonedTemps(path);
  }

  fileOf(sha256: string): string {
    return join(this.path, sha256);
  }

  createTemp(): TempBlobFile {
    return new TempBlobFile(join(this.path, `${TEMP_PREFIX}${process.pid}-${randomUUID()}`));
  }

  /** The file's bytes, or undefined when there is no such file. */
  async read(sha256: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.fileOf(sha256));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Makes the renames into this directory durable. */
  async sync(): Promise<void> {
    const dir = await open(this.path, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** Temporary files of processes that are gone (killed mid-write); another live process's are left alone. */
function removeAbandonedTemps(dir: string): void {
  for (const name of readdirSync(dir)) {
    const pid = Number(/^\.tmp-(\d+)-/.exec(name)?.[1]);
    if (Number.isInteger(pid) && !isAlive(pid)) rmSync(join(dir, name), { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A temporary file taking writes as they come (batched, positional); the first I/O error fails `finish`. */
export class TempBlobFile {
  private readonly handle: Promise<FileHandle>;
  private readonly pending: Promise<void>[] = [];
  private failure: { readonly error: unknown } | undefined;
  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  private written = 0;
  private unsynced = 0;

  constructor(readonly path: string) {
    this.handle = open(path, 'wx', 0o600);
    this.track(this.handle);
  }

  write(bytes: Uint8Array): void {
    this.batch.push(bytes);
    this.batchBytes += bytes.byteLength;
    if (this.batchBytes >= WRITE_BATCH_BYTES || this.batch.length >= MAX_BATCH_PIECES) this.flush();
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const [pieces, at, n] = [this.batch, this.written, this.batchBytes];
    this.batch = [];
    this.batchBytes = 0;
    this.written += n;
    this.unsynced += n;
    this.track(
      this.handle.then(async (fh) => {
        const { bytesWritten } = await fh.writev(pieces, at);
        if (bytesWritten !== n) throw new Error(`short write to ${this.path}: ${bytesWritten} of ${n} bytes at ${at}`);
      }),
    );
    if (this.unsynced >= SYNC_EVERY_BYTES) {
      this.unsynced = 0;
      this.track(this.handle.then((fh) => fh.datasync()));
    }
  }

  /** Waits for every write, makes the file durable and renames it to `path`. */
  async finish(path: string): Promise<void> {
    this.flush();
    await Promise.all(this.pending);
    if (this.failure) throw this.failure.error;
    const fh = await this.handle;
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(this.path, path);
  }

  async discard(): Promise<void> {
    await Promise.all(this.pending);
    await (await this.handle.catch(() => undefined))?.close().catch(() => undefined);
    await rm(this.path, { force: true });
  }

  /** Keeps `op` for finish/discard, recording (not throwing) its failure so none goes unhandled meanwhile. */
  private track(op: Promise<unknown>): void {
    this.pending.push(
      op.then(
        () => undefined,
        (error: unknown) => {
          this.failure ??= { error };
        },
      ),
    );
  }
}
