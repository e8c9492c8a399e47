import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/privacy/errors.js';
import { PrivacyLedger } from '../../src/privacy/ledger.js';
import { epsilonOf } from '../../src/privacy/rdp.js';
import { IntegrityError, SchemaVersionError, StoreBusyError } from '../../src/store/errors.js';
import { openSqliteStore, sqliteStorePath, type SqliteStore } from '../../src/store/sqlite.js';
import { migrate, SCHEMA_VERSION } from '../../src/store/sqlite/schema.js';
import { describeStoreContract, ManualClock, runWithOpenRound } from './contract.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'lethe-store-'));
}

describeStoreContract('sqlite', async (clock) => {
  const dir = tempDir();
  const path = sqliteStorePath(dir);
  let current: SqliteStore = openSqliteStore(path, { clock: clock.read });
  return {
    get store() {
      return current;
    },
    async reopen() {
      current.close();
      current = openSqliteStore(path, { clock: clock.read });
      return current;
    },
    async cleanup() {
      current.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('sqlite store', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('sqlite store – creates one WAL database with foreign keys on, at the current schema version', () => {
    const store = openSqliteStore(sqliteStorePath(join(dir, 'nested')));
    store.close();
    const db = new Database(join(dir, 'nested', 'lethe.db'), { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('sqlite store – refuses a database from a newer schema version', () => {
    const path = sqliteStorePath(dir);
    openSqliteStore(path).close();
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openSqliteStore(path)).toThrow(SchemaVersionError);
  });

  it('sqlite store – refuses a file that is not a database', () => {
    const path = sqliteStorePath(dir);
    writeFileSync(path, 'definitely not sqlite '.repeat(100));
    expect(() => openSqliteStore(path)).toThrow(IntegrityError);
  });

  it('sqlite store – ledger appends commit with synchronous=FULL and leave the connection at NORMAL', async () => {
    const store = openSqliteStore(sqliteStorePath(dir));
    const db = (store as unknown as { ctx: { db: Database.Database } }).ctx.db;
    const calls: string[] = [];
    const original = db.pragma.bind(db);
    db.pragma = ((source: string, options?: Database.PragmaOptions) => {
      calls.push(source);
      return original(source, options);
    }) as typeof db.pragma;
    await store.runs.create({ id: 'run-1', config: {} });
    expect(calls).toEqual([]); // ordinary writes keep NORMAL
    await store.ledger.append({ runId: 'run-1', seq: 0, round: 1, kind: 'aggregate', q: 1, sigma: 1, steps: 1, at: 0 });
    expect(calls).toEqual(['synchronous = FULL', 'synchronous = NORMAL']);
    expect(original('synchronous', { simple: true })).toBe(1);
    store.close();
  });

  it('sqlite store – backs the privacy ledger: reservations survive a reopen and a refused one records nothing', async () => {
    const path = sqliteStorePath(dir);
    let store = openSqliteStore(path);
    await store.runs.create({ id: 'run-1', config: {} });
    const budget = { epsilon: 8, delta: 1e-5 };
    let ledger = new PrivacyLedger({ store: store.ledger, now: () => 42 });
    ledger.setBudget('run-1', budget);
    await ledger.reserve('run-1', 1, { kind: 'aggregate', q: 0.5, sigma: 1.2, steps: 1 });
    await ledger.reserve('run-1', 1, { kind: 'clip_count', q: 0.5, sigma: 10, steps: 1 });
    const spent = await ledger.spent('run-1');
    store.close();

    store = openSqliteStore(path);
    ledger = new PrivacyLedger({ store: store.ledger });
    ledger.setBudget('run-1', budget);
    expect(await ledger.spent('run-1')).toEqual(spent);
    expect((await store.ledger.list('run-1')).map((e) => [e.seq, e.kind, e.at])).toEqual([
      [0, 'aggregate', 42],
      [1, 'clip_count', 42],
    ]);
    await expect(ledger.reserve('run-1', 2, { kind: 'aggregate', q: 1, sigma: 0.3, steps: 100 })).rejects.toBeInstanceOf(
      BudgetExceededError,
    );
    expect(await store.ledger.list('run-1')).toHaveLength(2);
    store.close();
  });

  it('sqlite store – a ledger written before entries named their round loads: counted, untagged, and charged on top', async () => {
    // Prepare: a database as schema 2 left it, with two ledger entries of a running run
    const path = sqliteStorePath(dir);
    const old = new Database(path);
    migrate(old, 2);
    old.prepare("INSERT INTO runs (id, config, state, created_at, updated_at) VALUES ('run-1', '{}', 'running', 1, 1)").run();
    const insert = old.prepare("INSERT INTO ledger (run_id, seq, kind, q, sigma, steps, at) VALUES ('run-1', ?, 'aggregate', 0.1, 1, 1, ?)");
    insert.run(0, 10);
    insert.run(1, 20);
    old.close();
    // Execute: this build opens it (migrating to the current schema) and charges rounds 3 and 3 again
    const store = openSqliteStore(path);
    const ledger = new PrivacyLedger({ store: store.ledger, now: () => 30 });
    ledger.setBudget('run-1', { epsilon: 100, delta: 1e-5 });
    const before = await ledger.spent('run-1');
    const third = await ledger.reserve('run-1', 3, { kind: 'aggregate', q: 0.1, sigma: 1, steps: 1 });
    const again = await ledger.reserve('run-1', 3, { kind: 'aggregate', q: 0.1, sigma: 1, steps: 1 });
    // Assert
    expect(before.releases).toBe(2);
    expect(before.epsilon).toBeCloseTo(epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 2, delta: 1e-5 }).epsilon, 12);
    expect(again).toEqual(third);
    expect(await store.ledger.list('run-1')).toEqual([
      { runId: 'run-1', seq: 0, round: null, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 10 },
      { runId: 'run-1', seq: 1, round: null, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 20 },
      { runId: 'run-1', seq: 2, round: 3, kind: 'aggregate', q: 0.1, sigma: 1, steps: 1, at: 30 },
    ]);
    store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('sqlite store – two connections charging the same round at once record one entry', async () => {
    // Prepare: two coordinators' ledgers on one database file
    const path = sqliteStorePath(dir);
    const [a, b] = [openSqliteStore(path), openSqliteStore(path)];
    await a.runs.create({ id: 'run-1', config: {} });
    const ledgers = [a, b].map((s) => new PrivacyLedger({ store: s.ledger }));
    ledgers.forEach((l) => l.setBudget('run-1', { epsilon: 100, delta: 1e-5 }));
    // Execute
    const [x, y] = await Promise.all(ledgers.map((l) => l.reserve('run-1', 1, { kind: 'aggregate', q: 0.1, sigma: 1, steps: 1 })));
    // Assert
    expect(y).toEqual(x);
    expect(await b.ledger.list('run-1')).toEqual([x]);
    a.close();
    b.close();
  });

  it('sqlite store – detects a blob whose bytes were altered on disk', async () => {
    const path = sqliteStorePath(dir);
    const store = openSqliteStore(path);
    const { sha256 } = await store.blobs.put(new Uint8Array([1, 2, 3]));
    const raw = new Database(path);
    raw.prepare('UPDATE blobs SET bytes = ? WHERE sha256 = ?').run(Buffer.from([1, 2, 4]), sha256);
    raw.close();
    await expect(store.blobs.get(sha256)).rejects.toBeInstanceOf(IntegrityError);
    store.close();
  });

  it('sqlite store – two connections racing on one round: exactly one compare-and-set wins', async () => {
    const path = sqliteStorePath(dir);
    const clock = new ManualClock();
    const a = openSqliteStore(path, { clock: clock.read });
    const b = openSqliteStore(path, { clock: clock.read });
    await runWithOpenRound(a);
    const results = await Promise.all([
      a.rounds.transition('run-1', 1, 'open', 'aggregating'),
      b.rounds.transition('run-1', 1, 'open', 'aggregating'),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    await a.checkIntegrity();
    a.close();
    b.close();
  });

  it('sqlite store – a write blocked by another process’s lock fails as StoreBusyError after the busy timeout', async () => {
    const path = sqliteStorePath(dir);
    const store = openSqliteStore(path, { busyTimeoutMs: 50 });
    const locker = new Database(path);
    locker.exec('BEGIN IMMEDIATE');
    await expect(store.runs.create({ id: 'run-1', config: {} })).rejects.toBeInstanceOf(StoreBusyError);
    locker.exec('ROLLBACK');
    locker.close();
    await store.runs.create({ id: 'run-1', config: {} });
    store.close();
  });
});
