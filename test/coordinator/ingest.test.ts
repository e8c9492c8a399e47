/**
 * PushUpdate of a large update (src/coordinator/ingest.ts), whose running digests are checked on a worker thread:
 * the same refusals and guarantees as on the event loop.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { sqliteBlobDir, sqliteStorePath } from '../../src/store/sqlite.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { encodeTensors } from '../../src/wire/codec.js';
import type { Task } from '../../src/wire/messages.js';
import { Admin, makeDelta, runJson, tempDir, TestClient, writeTestModel } from './helpers.js';

/** On the test model (2 layers, width 16) an FFA upload is 384·r bytes plus the head: r = 11,000 makes it ≈ 4.2 MB, above
 * the size from which ingest checks digests off the event loop. */
const LARGE_R = 11_000;

describe('coordinator ingest of a large update', () => {
  const dir = tempDir('lethe-ingest-');
  let coordinator: Coordinator;
  let admin: Admin;
  let clients: TestClient[];
  let tasks: Task[];
  let global: Map<string, HostTensor>;

  beforeAll(async () => {
    const baseModel = await writeTestModel(dir.path);
    coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: () => undefined, waitForClientsMs: 50 });
    await coordinator.start();
    admin = new Admin(coordinator.address, coordinator.adminToken);
    const token = await admin.joinToken(2);
    clients = [0, 1].map(() => new TestClient(coordinator.address));
    for (const c of clients) {
      await c.enroll(token);
      await c.heartbeat();
    }
    await admin.createRun(runJson(baseModel, { rounds: 1, min_clients: 2, round_deadline_s: 120, lora: { r: LARGE_R, alpha: 2 * LARGE_R } }));
    tasks = (await Promise.all(clients.map((c) => c.pullTask(5000)))) as Task[];
    global = await clients[0]!.fetchAdapter(tasks[0]!);
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  it('ingest – a corrupted chunk of a large upload is refused with chunk_hash_mismatch and leaves no blob; the intact upload is accepted once', async () => {
    // Prepare
    const [task, c] = [tasks[0]!, clients[0]!];
    const encoded = encodeTensors(makeDelta(task, global, (t, i) => ((t + i) % 97) * 1e-5));
    expect(encoded.manifest.totalBytes).toBeGreaterThan(4 << 20);
    const corrupt = { ...encoded, chunks: encoded.chunks.map((ch, i) => (i === 2 ? { ...ch, data: Buffer.alloc(ch.data.length, 7) } : ch)) };
    const blobFiles = (): string[] => readdirSync(sqliteBlobDir(sqliteStorePath(join(dir.path, 'data'))));
    const before = blobFiles();
    // Execute
    const refused = await c.push(task, corrupt).then(
      () => undefined,
      (err: unknown) => err,
    );
    const afterRefusal = blobFiles();
    const accepted = await c.push(task, encoded);
    const retried = await c.push(task, encoded);
    // Assert
    expect(refused).toMatchObject({ status: status.INVALID_ARGUMENT, code: 'chunk_hash_mismatch' });
    expect(afterRefusal).toEqual(before);
    expect(accepted.result).toBe('RESULT_ACCEPTED');
    expect(retried.result).toBe('RESULT_DUPLICATE');
    expect(blobFiles()).toHaveLength(before.length + 1);
  });
});
