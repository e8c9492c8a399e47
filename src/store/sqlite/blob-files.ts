/**
 * Large blobs as files, `<dir>/<sha256>`. A blob is written to a temporary file as its pieces arrive (positional
 * writes on libuv's pool, off the event loop), fdatasync'd, renamed to its content address and the directory
 * fsync'd; only then does its row commit (blobs.ts). So a file under a content address is always complete and on
 * stable storage, and a crash at any instant leaves at most a temporary file, which the next open removes.
 */
import { randomUUID } from 'node:crypto';
import { constants, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isPageAligned } from '../../tensors/page-aligned.js';

/** Pieces are written in batches of about this many bytes (or MAX_BATCH_PIECES): each write is a hand-off to the
 * thread pool, which on a busy machine can cost the event loop its time slice. */
const WRITE_BATCH_BYTES = 4 << 20;
const MAX_BATCH_PIECES = 64;
/** Writeback is started every this many bytes, so the final fdatasync of a large blob has little left to flush. */
const SYNC_EVERY_BYTES = 8 << 20;
const TEMP_PREFIX = '.tmp-';
/**
 * Direct writes start and end on multiples of this (the largest logical block size in common use).
 *
 * Why direct I/O: a buffered write copies every byte into the page cache, in the kernel, on the writing thread. Into
 * pages the kernel has to allocate afresh, that copy ran at 0.4–0.8 GB/s on our VMs: 175–365 ms of system CPU for
 * 4 × 32 MiB, against 3–9 ms with O_DIRECT (BENCHMARKS.md). Blobs this large are hashed and kept in memory anyway
 * (../blob-cache.ts), so the page cache's copy served nobody.
 */
const DIRECT_IO_ALIGNMENT = 4096;

export class BlobDir {
  /** Whether temporary files here try O_DIRECT for page-aligned payloads; cleared when the file system refuses it. */
  directIo = constants.O_DIRECT !== undefined;

  constructor(readonly path: string) {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    removeAbandonedTemps(path);
  }

  fileOf(sha256: string): string {
    return join(this.path, sha256);
  }

  createTemp(): TempBlobFile {
    return new TempBlobFile(join(this.path, `${TEMP_PREFIX}${process.pid}-${randomUUID()}`), this);
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

/**
 * A temporary file taking writes as they come (batched, positional); the first I/O error fails `finish`.
 *
 * Pieces that lie back to back in a page-aligned buffer (tensors/page-aligned.ts) at their offsets in the file are
 * written in whole blocks with O_DIRECT, through a second descriptor: the device reads them from that buffer, and
 * nothing is copied into the page cache. Everything else, including such a payload's last partial block, goes through
 * the page cache. The two never write the same block, and the final fdatasync makes both durable.
 */
export class TempBlobFile {
  private readonly handle: Promise<FileHandle>;
  /** The O_DIRECT descriptor, opened on the first aligned batch; undefined inside when the file system refused it. */
  private direct: Promise<FileHandle | undefined> | undefined;
  private readonly pending: Promise<void>[] = [];
  private failure: { readonly error: unknown } | undefined;
  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  private written = 0;
  private unsynced = 0;

  constructor(
    readonly path: string,
    private readonly dir: BlobDir,
  ) {
    this.handle = open(path, 'wx', 0o600);
    this.track(this.handle);
  }

  write(bytes: Uint8Array): void {
    this.batch.push(bytes);
    this.batchBytes += bytes.byteLength;
    if (this.batchBytes >= WRITE_BATCH_BYTES || this.batch.length >= MAX_BATCH_PIECES) this.flush(false);
  }

  /** Writes the batch; one that can go direct keeps its partial last block for the next batch unless `last`. */
  private flush(last: boolean): void {
    const [pieces, at, n] = [this.batch, this.written, this.batchBytes];
    if (n === 0) return;
    this.batch = [];
    this.batchBytes = 0;
    const span = this.dir.directIo ? alignedSpan(pieces, at) : undefined;
    if (span === undefined) {
      this.writeBuffered(pieces, at, n);
      return;
    }
    const whole = n - (n % DIRECT_IO_ALIGNMENT);
    // In batch-sized writes, so that the pool's threads keep several requests at the device at once.
    for (let from = 0; from < whole; from += WRITE_BATCH_BYTES) this.writeDirect(span.subarray(from, Math.min(whole, from + WRITE_BATCH_BYTES)), at + from);
    this.written = at + whole;
    const rest = span.subarray(whole);
    if (rest.byteLength === 0) return;
    if (last) this.writeBuffered([rest], at + whole, rest.byteLength);
    else [this.batch, this.batchBytes] = [[rest], rest.byteLength];
  }

  private writeBuffered(pieces: Uint8Array[], at: number, n: number): void {
    this.written = at + n;
    this.unsynced += n;
    this.track(this.handle.then((fh) => writeAll(fh, pieces, at, n, this.path)));
    if (this.unsynced >= SYNC_EVERY_BYTES) {
      this.unsynced = 0;
      this.track(this.handle.then((fh) => fh.datasync()));
    }
  }

  /** `bytes`: whole blocks at a block-aligned offset of a page-aligned buffer. Falls back to the page cache on EINVAL. */
  private writeDirect(bytes: Uint8Array, at: number): void {
    this.direct ??= this.handle.then(
      () => open(this.path, constants.O_WRONLY | constants.O_DIRECT).catch(() => this.refuseDirect()),
      () => undefined,
    );
    const direct = this.direct;
    this.track(
      (async () => {
        const fh = await direct;
        if (fh) {
          try {
            return await writeAll(fh, [bytes], at, bytes.byteLength, this.path);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
            this.refuseDirect();
          }
        }
        await writeAll(await this.handle, [bytes], at, bytes.byteLength, this.path);
      })(),
    );
  }

  /** This file system (or device) does not take direct writes: none are tried in this directory again. */
  private refuseDirect(): undefined {
    this.dir.directIo = false;
    return undefined;
  }

  /** Waits for every write, makes the file durable and renames it to `path`. */
  async finish(path: string): Promise<void> {
    this.flush(true);
    await Promise.all(this.pending);
    if (this.failure) throw this.failure.error;
    const fh = await this.handle;
    try {
      await fh.datasync();
    } finally {
      await fh.close();
      await (await this.direct)?.close();
    }
    await rename(this.path, path);
  }

  async discard(): Promise<void> {
    await Promise.all(this.pending);
    await (await this.handle.catch(() => undefined))?.close().catch(() => undefined);
    await (await this.direct)?.close().catch(() => undefined);
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

/** The pieces as one view when they lie back to back in a page-aligned buffer from block-aligned file offset `at` on. */
function alignedSpan(pieces: readonly Uint8Array[], at: number): Uint8Array | undefined {
  const first = pieces[0]!;
  if (at % DIRECT_IO_ALIGNMENT !== 0 || first.byteOffset !== at || !isPageAligned(first.buffer)) return undefined;
  let end = at + first.byteLength;
  for (const p of pieces.slice(1)) {
    if (p.buffer !== first.buffer || p.byteOffset !== end) return undefined;
    end += p.byteLength;
  }
  return new Uint8Array(first.buffer, at, end - at);
}

async function writeAll(fh: FileHandle, pieces: readonly Uint8Array[], at: number, n: number, path: string): Promise<void> {
  const { bytesWritten } = await fh.writev(pieces, at);
  if (bytesWritten !== n) throw new Error(`short write to ${path}: ${bytesWritten} of ${n} bytes at ${at}`);
}
