/**
 * What every SQLite table module shares: the connection, the clock, the closed guard, transactions and the one
 * place where driver errors become StoreErrors.
 *
 * Durability: the connection runs WAL with synchronous=NORMAL, which survives a killed process at any instant (a
 * commit is in the OS once the call returns) but may lose the last commits on power loss. Ledger and budget writes
 * use `durable`, which commits with synchronous=FULL: the WAL is fsync'd before the call returns, and because the
 * WAL is sequential that also makes every earlier commit durable.
 */
import type Database from 'better-sqlite3';
import {
  ConflictError,
  IntegrityError,
  StoreBusyError,
  StoreClosedError,
  StoreError,
  StoreIOError,
} from '../errors.js';

export class SqliteContext {
  private closed = false;
  private readonly tx: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(
    readonly db: Database.Database,
    readonly clock: () => number,
  ) {
    this.tx = db.transaction((fn: () => unknown) => fn());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  markClosed(): void {
    this.closed = true;
  }

  now(): number {
    return Math.floor(this.clock());
  }

  /** Reads (single statements need no explicit transaction). */
  read<T>(what: string, fn: () => T): Promise<T> {
    return this.settle(what, fn);
  }

  /** A write transaction, taken with BEGIN IMMEDIATE so two writers queue instead of deadlocking on upgrade. */
  write<T>(what: string, fn: () => T): Promise<T> {
    return this.settle(what, () => this.tx.immediate(fn) as T);
  }

  /** A write transaction that is on stable storage before the promise resolves (see the module comment). */
  durable<T>(what: string, fn: () => T): Promise<T> {
    return this.settle(what, () => {
      this.db.pragma('synchronous = FULL');
      try {
        return this.tx.immediate(fn) as T;
      } finally {
        this.db.pragma('synchronous = NORMAL');
      }
    });
  }

  /** File I/O beside the database (blob files): same closed check and error mapping, for asynchronous work. */
  async io<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreClosedError(what);
    try {
      return await fn();
    } catch (err) {
      throw toStoreError(err, what);
    }
  }

  /** Runs `fn` now (the work is synchronous) and hands its outcome over as a promise, errors mapped. */
  private settle<T>(what: string, fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new StoreClosedError(what));
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(toStoreError(err, what));
    }
  }
}

/** Binds bytes without copying (the driver binds Buffers, not plain Uint8Arrays). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Maps anything the driver throws to a StoreError (ours pass through), keeping the original as `cause`. */
export function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code.startsWith('SQLITE_LOCKED')) {
      return new StoreBusyError(what, { cause: err });
    }
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
      return new IntegrityError(`store file is corrupt or not a Lethe database (while trying to ${what})`, { cause: err });
    }
    if (code.startsWith('SQLITE_CONSTRAINT')) {
      return new ConflictError(`${what} violates a stored constraint: ${(err as Error).message}`, 'constraint', { cause: err });
    }
  }
  return new StoreIOError(what, { cause: err });
}
