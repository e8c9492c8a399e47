/**
 * The SQLite implementation of the Store (better-sqlite3, synchronous underneath): one database file under the data
 * directory, WAL journal, foreign keys on, a busy timeout for a second process on the same file, and the schema
 * migrated by `user_version` at open; large blobs are files in `<file>-blobs/` beside it (sqlite/blob-files.ts). Every
 * commit survives `kill -9` of the process at any instant; ledger and budget writes and blob files also survive power
 * loss (see sqlite/context.ts).
 *
 *   const store = openSqliteStore(sqliteStorePath(dataDir));
 *   const { duplicate } = await store.updates.put({ runId, round, clientId, sha256, numExamples, metrics });
 *   store.close();
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { IntegrityError, StoreError } from './errors.js';
import { SqliteBlobs } from './sqlite/blobs.js';
import { SqliteContext, toStoreError } from './sqlite/context.js';
import { SqliteClients, SqliteJoinTokens, SqliteNonces } from './sqlite/identity.js';
import { SqliteBudgets, SqliteLedger } from './sqlite/privacy.js';
import { SqliteRounds, SqliteUpdates } from './sqlite/rounds.js';
import { SqliteRuns } from './sqlite/runs.js';
import { migrate } from './sqlite/schema.js';
import { SqliteUnlearning } from './sqlite/unlearning.js';
import type { Store } from './store.js';

export interface SqliteStoreConfig {
  /** 5000: how long (ms) a write waits for another connection's lock before failing with StoreBusyError. */
  readonly busyTimeoutMs: number;
  /** Date.now: the clock for created/updated/recorded times (injected so tests can pin it). */
  readonly clock: () => number;
  /** 512 MiB: bytes of recently written or verified blob files kept in memory (blob-cache.ts). */
  readonly blobCacheBytes: number;
}

export const DEFAULT_SQLITE_STORE_CONFIG: SqliteStoreConfig = Object.freeze({
  busyTimeoutMs: 5000,
  clock: Date.now,
  blobCacheBytes: 512 << 20,
});

/** The database file of a data directory. */
export function sqliteStorePath(dataDir: string): string {
  return join(dataDir, 'lethe.db');
}

/** The directory of a database's blob files (sqlite/blob-files.ts), beside it like its -wal file. */
export function sqliteBlobDir(path: string): string {
  return `${path}-blobs`;
}

export class SqliteStore implements Store {
  readonly clients: SqliteClients;
  readonly joinTokens: SqliteJoinTokens;
  readonly nonces: SqliteNonces;
  readonly runs: SqliteRuns;
  readonly rounds: SqliteRounds;
  readonly updates: SqliteUpdates;
  readonly blobs: SqliteBlobs;
  readonly ledger: SqliteLedger;
  readonly budgets: SqliteBudgets;
  readonly unlearning: SqliteUnlearning;
  private readonly ctx: SqliteContext;

  /** Use openSqliteStore: this takes an open, migrated connection. */
  constructor(db: Database.Database, config: SqliteStoreConfig) {
    this.ctx = new SqliteContext(db, config.clock);
    this.blobs = new SqliteBlobs(this.ctx, sqliteBlobDir(db.name), config.blobCacheBytes);
    this.joinTokens = new SqliteJoinTokens(this.ctx);
    this.clients = new SqliteClients(this.ctx, this.joinTokens);
    this.nonces = new SqliteNonces(this.ctx);
    this.runs = new SqliteRuns(this.ctx, this.blobs);
    this.rounds = new SqliteRounds(this.ctx, this.runs);
    this.updates = new SqliteUpdates(this.ctx);
    this.ledger = new SqliteLedger(this.ctx, this.runs);
    this.budgets = new SqliteBudgets(this.ctx, this.runs);
    this.unlearning = new SqliteUnlearning(this.ctx, this.runs, this.blobs);
  }

  get isClosed(): boolean {
    return this.ctx.isClosed;
  }

  /**
   * SQLite's own consistency check of the file (`PRAGMA integrity_check`), then every blob file read back and hashed
   * against its address (a full scrub); throws IntegrityError on damage.
   */
  async checkIntegrity(): Promise<void> {
    await this.ctx.read('check integrity', () => {
      const problems = this.ctx.db.pragma('integrity_check', { simple: false }) as { integrity_check: string }[];
      const fkProblems = this.ctx.db.pragma('foreign_key_check') as unknown[];
      const text = problems.map((p) => p.integrity_check).filter((t) => t !== 'ok');
      if (text.length > 0 || fkProblems.length > 0) {
        throw new IntegrityError(`database file is damaged: ${[...text, ...fkProblems.map((p) => JSON.stringify(p))].join('; ')}`);
      }
    });
    await this.blobs.verifyFiles();
  }

  close(): void {
    if (this.ctx.isClosed) return;
    this.ctx.markClosed();
    this.ctx.db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens (creating when absent) the store at `path` and migrates its schema. Throws a StoreError: SchemaVersionError
 * for a file from a newer build, IntegrityError for a file that is not a database, StoreIOError otherwise.
 */
export function openSqliteStore(path: string, overrides: Partial<SqliteStoreConfig> = {}): SqliteStore {
  const config: SqliteStoreConfig = Object.freeze({ ...DEFAULT_SQLITE_STORE_CONFIG, ...overrides });
  let db: Database.Database | undefined;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    db = new Database(path, { timeout: config.busyTimeoutMs });
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new StoreError(`could not switch ${path} to WAL journaling (got ${String(mode)})`, 'io');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db);
    return new SqliteStore(db, config);
  } catch (err) {
    db?.close();
    throw toStoreError(err, `open the store at ${path}`);
  }
}
