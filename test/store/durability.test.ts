/**
 * kill -9 at an arbitrary instant: a real child process writes in a loop and acknowledges each write after it
 * returned; the parent SIGKILLs it mid-stream, reopens the file and checks that the database is intact, that every
 * acknowledged write is there, and that no multi-row change was torn. Repeated on the same file, so each restart
 * also recovers from the previous kill. Large blobs (files beside the database) are among the writes.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteStore, sqliteBlobDir, sqliteStorePath } from '../../src/store/sqlite.js';

const WRITER = fileURLToPath(new URL('./fixtures/crash-writer.mjs', import.meta.url));
const BUILT_STORE = fileURLToPath(new URL('../../dist/store', import.meta.url));
const STORE_SOURCES = fileURLToPath(new URL('../../src/store', import.meta.url));

/** Newest modification time of the files under `dir`. */
function newestMtime(dir: string): number {
  return Math.max(
    ...readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((name) => statSync(join(dir, name)).mtimeMs),
  );
}

/**
 * Runs the writer, kills it with SIGKILL `killAfterMs` after its first full iteration (so the kill lands mid-stream even
 * when an fsync stalls on a busy disk), and returns its ack lines.
 */
function runAndKill(path: string, killAfterMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (timer === undefined && /^closed /m.test(out)) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`writer exited on its own (code ${code}): ${err}`));
      // Only complete lines are acknowledgements; a line cut by the kill is not.
      else resolve(out.split('\n').slice(0, -1));
    });
  });
}

describe('sqlite store durability', () => {
  let dir: string | undefined;
  beforeAll(() => {
    // The child runs the built store: a missing or stale build would test old code (npm test builds first).
    if (!existsSync(BUILT_STORE) || newestMtime(BUILT_STORE) < newestMtime(STORE_SOURCES)) {
      throw new Error('dist/store is missing or older than src/store: run `npx tsc -p .` first');
    }
    dir = mkdtempSync(join(tmpdir(), 'lethe-kill9-'));
  });
  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('sqlite store – every write acknowledged before kill -9 survives, and no transaction is torn', async () => {
    const path = sqliteStorePath(dir!);
    for (const killAfterMs of [150, 40, 260, 90]) {
      const acks = await runAndKill(path, killAfterMs);
      expect(acks.length).toBeGreaterThan(10);

      const store = openSqliteStore(path);
      await store.checkIntegrity();
      const run = await store.runs.get('run-1');
      const rounds = await store.rounds.list('run-1');
      const ledger = await store.ledger.list('run-1');
      expect(run?.currentRound).toBe(rounds.at(-1)?.round);
      expect(ledger.map((e) => e.seq)).toEqual(ledger.map((_, i) => i));

      for (const line of acks) {
        const [kind, a, b] = line.split(' ');
        if (kind === 'blob') expect(await store.blobs.has(a!)).toBe(true);
        if (kind === 'fileblob') expect((await store.blobs.get(a!))?.length).toBe(300 * 1024); // get verifies the hash
        if (kind === 'round') expect(await store.rounds.get('run-1', Number(a))).toBeDefined();
        if (kind === 'update') expect(await store.updates.get('run-1', Number(a), b!)).toBeDefined();
        if (kind === 'aggregating') expect(['aggregating', 'closed']).toContain((await store.rounds.get('run-1', Number(a)))?.state);
        if (kind === 'ledger') expect(ledger[Number(a)]?.seq).toBe(Number(a));
        if (kind === 'closed') expect(await store.rounds.get('run-1', Number(a))).toMatchObject({ state: 'closed', adapterShaAfter: b });
        if (kind === 'nonce') expect(await store.nonces.insertIfAbsent('w-0', new Uint8Array(Buffer.from(a!, 'hex')), 0)).toBe(false);
      }

      // Multi-row changes are all-or-nothing: counters match the rows, the run points at the last closed adapter.
      for (const round of rounds) {
        const updates = await store.updates.list('run-1', round.round);
        expect(round.updatesReceived).toBe(updates.length);
        expect(round.examplesReceived).toBe(updates.reduce((n, u) => n + u.numExamples, 0));
      }
      const lastClosed = rounds.filter((r) => r.state === 'closed').at(-1);
      expect(run?.globalAdapterSha).toBe(lastClosed?.adapterShaAfter ?? null);
      // The killed writer's temporary blob file, if any, went when the store reopened.
      expect(readdirSync(sqliteBlobDir(path)).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
      store.close();
    }
  });
});
