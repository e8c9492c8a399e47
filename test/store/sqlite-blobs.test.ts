/** Large blobs of the SQLite store live in files beside the database (src/store/sqlite/blob-files.ts). */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openBlobWriter, putOwned } from '../../src/store/blob-writer.js';
import { IntegrityError, InvalidArgumentError } from '../../src/store/errors.js';
import { openSqliteStore, sqliteBlobDir, sqliteStorePath } from '../../src/store/sqlite.js';
import { FILE_BLOB_MIN_BYTES } from '../../src/store/sqlite/blobs.js';
import { sharedPageAlignedBuffer } from '../../src/tensors/page-aligned.js';

const hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** `bytes` cut into pieces of `size`, as views (an assembler hands over views of its payload). */
function pieces(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, Math.min(at + size, bytes.length)));
  return out;
}

/** Bytes of `file` held in the page cache (util-linux fincore). */
function residentBytes(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
}

describe('sqlite store – blob files', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lethe-blobs-'));
    path = sqliteStorePath(dir);
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('sqlite blobs – a large blob written in pieces under its caller-computed hash is a file that a fresh store reads back verified', async () => {
    // Prepare: 9 MiB + 3 bytes, so pieces end mid-way and a writeback sync happens before commit.
    const bytes = new Uint8Array(randomBytes((9 << 20) + 3));
    const sha256 = hex(bytes);
    const store = openSqliteStore(path);
    // Execute
    const writer = openBlobWriter(store.blobs, bytes.length);
    for (const p of pieces(bytes, 1 << 20)) writer.write(p);
    const first = await writer.commit(sha256);
    const again = await store.blobs.put(bytes);
    store.close();
    const fresh = openSqliteStore(path);
    const read = await fresh.blobs.get(sha256);
    fresh.close();
    // Assert
    expect(first).toEqual({ sha256, created: true });
    expect(again).toEqual({ sha256, created: false });
    expect(Buffer.from(read!).equals(bytes)).toBe(true);
    expect(readdirSync(sqliteBlobDir(path))).toEqual([sha256]);
    expect(readFileSync(join(sqliteBlobDir(path), sha256)).equals(bytes)).toBe(true);
    const row = new Database(path, { readonly: true }).prepare('SELECT length(bytes) AS n, file_bytes FROM blobs WHERE sha256 = ?').get(sha256);
    expect(row).toEqual({ n: 0, file_bytes: bytes.length });
  });

  it.runIf(process.platform === 'linux')('sqlite blobs – a blob in a page-aligned buffer is written around the page cache (O_DIRECT) from pieces of any size, and reads back intact', async () => {
    // Prepare: 9 MiB + 3 bytes in pieces of 1,000,003: no piece ends on a block boundary and the last block is partial.
    const size = (9 << 20) + 3;
    const aligned = new Uint8Array(sharedPageAlignedBuffer(size), 0, size);
    aligned.set(randomBytes(size));
    const ordinary = new Uint8Array(randomBytes(size));
    const store = openSqliteStore(path);
    // Execute
    const resident: number[] = [];
    for (const bytes of [aligned, ordinary]) {
      const writer = openBlobWriter(store.blobs, size);
      for (const p of pieces(bytes, 1_000_003)) writer.write(p);
      const { sha256 } = await writer.commit(hex(bytes));
      resident.push(residentBytes(join(sqliteBlobDir(path), sha256)));
    }
    store.close();
    const fresh = openSqliteStore(path);
    const read = await fresh.blobs.get(hex(aligned));
    fresh.close();
    // Assert
    expect(resident[0]).toBeLessThanOrEqual(4096); // only the partial last block went through the page cache
    expect(resident[1]).toBeGreaterThan(size / 2); // the contrast: an ordinary buffer's bytes all do
    expect(Buffer.from(read!).equals(aligned)).toBe(true);
  });

  it('sqlite blobs – putOwned stores bytes under their hash, durable and verified on a fresh read, and serves those very bytes from the cache', async () => {
    // Prepare
    const bytes = new Uint8Array(randomBytes(FILE_BLOB_MIN_BYTES + 12));
    const store = openSqliteStore(path);
    // Execute
    const stored = await putOwned(store.blobs, bytes);
    const cached = await store.blobs.get(hex(bytes));
    const again = await putOwned(store.blobs, bytes.slice());
    store.close();
    const fresh = openSqliteStore(path);
    const read = await fresh.blobs.get(hex(bytes));
    fresh.close();
    // Assert
    expect(stored).toEqual({ sha256: hex(bytes), created: true });
    expect(again).toEqual({ sha256: hex(bytes), created: false });
    expect(cached!.buffer).toBe(bytes.buffer);
    expect(Buffer.from(read!).equals(bytes)).toBe(true);
    expect(readdirSync(sqliteBlobDir(path))).toEqual([hex(bytes)]);
  });

  it('sqlite blobs – small blobs stay rows, whether put or written in pieces', async () => {
    const bytes = new Uint8Array(randomBytes(FILE_BLOB_MIN_BYTES - 1));
    const store = openSqliteStore(path);
    const writer = openBlobWriter(store.blobs, bytes.length);
    for (const p of pieces(bytes, 1000)) writer.write(p);
    const { sha256 } = await writer.commit(hex(bytes));
    expect(Buffer.from((await store.blobs.get(sha256))!).equals(bytes)).toBe(true);
    store.close();
    expect(readdirSync(sqliteBlobDir(path))).toEqual([]);
  });

  it('sqlite blobs – a blob file altered, truncated or removed on disk is refused with IntegrityError, by get and by the integrity scrub', async () => {
    const bytes = new Uint8Array(randomBytes(FILE_BLOB_MIN_BYTES));
    const setUp = openSqliteStore(path);
    const { sha256 } = await setUp.blobs.put(bytes);
    await setUp.checkIntegrity(); // intact
    setUp.close();
    const file = join(sqliteBlobDir(path), sha256);
    const altered = Buffer.from(bytes);
    altered[1000] = altered[1000]! ^ 1;
    for (const damage of [() => writeFileSync(file, altered), () => truncateSync(file, bytes.length - 1), () => rmSync(file)]) {
      damage();
      // A fresh store: the one that wrote the blob serves it from memory, where it was hashed.
      const store = openSqliteStore(path);
      await expect(store.blobs.get(sha256)).rejects.toBeInstanceOf(IntegrityError);
      await expect(store.checkIntegrity()).rejects.toBeInstanceOf(IntegrityError);
      store.close();
    }
  });

  it('sqlite blobs – an aborted writer, or one given fewer bytes than announced, leaves neither file nor row', async () => {
    const bytes = new Uint8Array(randomBytes(FILE_BLOB_MIN_BYTES * 2));
    const store = openSqliteStore(path);
    const aborted = openBlobWriter(store.blobs, bytes.length);
    aborted.write(bytes);
    await aborted.abort();
    const short = openBlobWriter(store.blobs, bytes.length);
    short.write(bytes.subarray(1));
    await expect(short.commit(hex(bytes))).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await store.blobs.has(hex(bytes))).toBe(false);
    expect(readdirSync(sqliteBlobDir(path))).toEqual([]);
    store.close();
  });

  it('sqlite blobs – opening removes temporary files of writers that were killed, not those of live processes', () => {
    openSqliteStore(path).close();
    const blobDir = sqliteBlobDir(path);
    const dead = join(blobDir, '.tmp-999999999-abandoned'); // above any pid_max: no such process
    const live = join(blobDir, `.tmp-${process.pid}-in-flight`);
    writeFileSync(dead, 'partial');
    writeFileSync(live, 'partial');
    openSqliteStore(path).close();
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
  });
});
