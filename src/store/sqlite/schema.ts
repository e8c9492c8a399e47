/**
 * The SQLite schema as an ordered list of migrations; `PRAGMA user_version` records how many have been applied.
 * Never edit a released migration: append a new one. Tables are STRICT so a wrong type is refused, not coerced.
 */
import type Database from 'better-sqlite3';
import { SchemaVersionError } from '../errors.js';

const MIGRATIONS: readonly string[] = [
  // 1: everything the coordinator keeps.
  `
  CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    public_key    BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    capabilities  TEXT NOT NULL,
    enrolled_at   INTEGER NOT NULL,
    revoked_at    INTEGER
  ) STRICT;

  CREATE TABLE join_tokens (
    hash        BLOB PRIMARY KEY CHECK (length(hash) = 32),
    expires_at  INTEGER NOT NULL,
    uses_left   INTEGER NOT NULL CHECK (uses_left >= 0),
    created_at  INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE nonces (
    client_id  TEXT NOT NULL REFERENCES clients (id),
    nonce      BLOB NOT NULL,
    ts         INTEGER NOT NULL,
    PRIMARY KEY (client_id, nonce)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX nonces_by_ts ON nonces (ts);

  CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    bytes       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,
    config              TEXT NOT NULL,
    state               TEXT NOT NULL
                        CHECK (state IN ('pending', 'running', 'completed', 'failed', 'budget_exhausted', 'stopped')),
    current_round       INTEGER NOT NULL DEFAULT 0 CHECK (current_round >= 0),
    global_adapter_sha  TEXT REFERENCES blobs (sha256),
    message             TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE rounds (
    run_id              TEXT NOT NULL REFERENCES runs (id),
    round               INTEGER NOT NULL CHECK (round >= 1),
    state               TEXT NOT NULL CHECK (state IN ('open', 'aggregating', 'closed', 'failed')),
    sampled_client_ids  TEXT NOT NULL,
    expected_clients    REAL NOT NULL,
    started_at          INTEGER NOT NULL,
    deadline_at         INTEGER NOT NULL,
    closed_at           INTEGER,
    metrics             TEXT NOT NULL,
    adapter_sha_before  TEXT REFERENCES blobs (sha256),
    adapter_sha_after   TEXT REFERENCES blobs (sha256),
    updates_received    INTEGER NOT NULL DEFAULT 0,
    examples_received   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, round)
  ) STRICT;

  CREATE TABLE updates (
    run_id        TEXT NOT NULL,
    round         INTEGER NOT NULL,
    client_id     TEXT NOT NULL REFERENCES clients (id),
    sha256        TEXT NOT NULL CHECK (length(sha256) = 64),
    num_examples  INTEGER NOT NULL CHECK (num_examples >= 0),
    metrics       TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    PRIMARY KEY (run_id, round, client_id),
    FOREIGN KEY (run_id, round) REFERENCES rounds (run_id, round)
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE strategy_state (
    run_id      TEXT PRIMARY KEY REFERENCES runs (id),
    state       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE ledger (
    run_id       TEXT NOT NULL REFERENCES runs (id),
    seq          INTEGER NOT NULL CHECK (seq >= 0),
    kind         TEXT NOT NULL,
    q            REAL NOT NULL CHECK (q >= 0 AND q <= 1),
    sigma        REAL NOT NULL CHECK (sigma >= 0),
    steps        INTEGER NOT NULL CHECK (steps >= 1),
    at           INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
  ) STRICT;

  CREATE TABLE budgets (
    run_id      TEXT PRIMARY KEY REFERENCES runs (id),
    epsilon     REAL NOT NULL CHECK (epsilon > 0),
    delta       REAL NOT NULL CHECK (delta > 0 AND delta < 1),
    updated_at  INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE budget_changes (
    run_id            TEXT NOT NULL REFERENCES runs (id),
    seq               INTEGER NOT NULL CHECK (seq >= 1),
    epsilon           REAL NOT NULL,
    delta             REAL NOT NULL,
    previous_epsilon  REAL,
    previous_delta    REAL,
    actor             TEXT NOT NULL,
    reason            TEXT NOT NULL,
    changed_at        INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
  ) STRICT;

  CREATE TABLE unlearning_requests (
    id                  TEXT PRIMARY KEY,
    run_id              TEXT NOT NULL REFERENCES runs (id),
    idx                 INTEGER NOT NULL CHECK (idx >= 1),
    client_ids          TEXT NOT NULL,
    selector            TEXT NOT NULL,
    reason              TEXT NOT NULL,
    state               TEXT NOT NULL
                        CHECK (state IN ('queued', 'assigned', 'training', 'verifying', 'active', 'failed')),
    failure_reason      TEXT,
    metrics             TEXT NOT NULL,
    result_adapter_sha  TEXT REFERENCES blobs (sha256),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    completed_at        INTEGER,
    UNIQUE (run_id, idx)
  ) STRICT;
  CREATE INDEX unlearning_by_state ON unlearning_requests (state, created_at);
  `,
  // 2: large blobs live in files beside the database (sqlite/blob-files.ts); their row keeps the size, bytes empty.
  `
  ALTER TABLE blobs ADD COLUMN file_bytes INTEGER CHECK (file_bytes IS NULL OR (file_bytes >= 0 AND length(bytes) = 0));
  `,
  // 3: each ledger entry names the round it pays for; with run and kind that tag is unique, so a step redone after a
  // crash finds its charge instead of adding a second (src/privacy/ledger.ts). Older entries keep round NULL.
  `
  ALTER TABLE ledger ADD COLUMN round INTEGER CHECK (round IS NULL OR round >= 1);
  CREATE UNIQUE INDEX ledger_by_tag ON ledger (run_id, round, kind) WHERE round IS NOT NULL;
  `,
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database up to `target` (default SCHEMA_VERSION; a test passes an older one to build a database the way
 * an older build left it), each migration in its own write transaction together with the version bump (so a crash
 * mid-migration leaves the previous version intact, and a second process opening the same file re-reads the version
 * under the lock instead of migrating twice). Refuses a database from a newer build.
 */
export function migrate(db: Database.Database, target = SCHEMA_VERSION): void {
  const step = db.transaction((): boolean => {
    const found = db.pragma('user_version', { simple: true }) as number;
    if (found > SCHEMA_VERSION) throw new SchemaVersionError(found, SCHEMA_VERSION);
    if (found >= target) return true;
    db.exec(MIGRATIONS[found] as string);
    db.pragma(`user_version = ${found + 1}`);
    return false;
  });
  while (!step.immediate());
}
