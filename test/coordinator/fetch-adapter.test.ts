/**
 * FetchAdapter's omit_frozen (fleet.proto) on a live coordinator over real gRPC: the adapter without the tensors the
 * run never changes, and the client-side completion (src/wire/transfer.ts completeAdapter) that must hash to the
 * task's adapter SHA-256.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '../../src/wire/messages.js';
import { bytesOf } from '../../src/wire/codec.js';
import { completeAdapter } from '../../src/wire/transfer.js';
import { makeDelta, runJson, tempDir, waitFor, writeTestModel, type Admin, type TestClient } from './helpers.js';
import { liveCoordinator, type LiveCoordinator } from './live.js';

describe('FetchAdapter – omit_frozen', () => {
  const dir = tempDir('lethe-fetch-adapter-');
  let live: LiveCoordinator;
  let admin: Admin;
  let client: TestClient;
  let baseModel: string;

  beforeAll(async () => {
    baseModel = await writeTestModel(dir.path);
    live = await liveCoordinator(dir.path);
    ({ admin, client } = live);
  });

  afterAll(async () => {
    await live.close();
    dir.remove();
  });

  /** Pulls the task of a new one-round run, and finishes that run with an upload after `check`. */
  async function withTask(aggregation: string, check: (task: Task) => Promise<void>): Promise<void> {
    const { runId } = await admin.createRun(runJson(baseModel, { name: `omit-${aggregation}`, aggregation, rounds: 1, min_clients: 1 }));
    const task = (await client.pullTask(5000))!;
    expect(task.runId).toBe(runId);
    await check(task);
    const global = await client.fetchAdapter(task);
    await client.push(task, makeDelta(task, global, () => 1e-3));
    await waitFor(async () => ((await admin.call('GetRun', { runId })).state === 'RUN_STATE_COMPLETED' ? true : undefined), 20_000, 'the run to complete');
  }

  it('FetchAdapter – under FFA, omit_frozen sends only the tensors uploads carry, and with the held lora_A they hash to the task\'s adapter', async () => {
    await withTask('ffa', async (task) => {
      // Act
      const whole = await client.download(task.runId, task.adapterSha256);
      const partial = await client.download(task.runId, task.adapterSha256, true);
      // Assert
      expect([...partial.tensors.keys()]).toEqual(task.uploadTensors); // lora_B and the head, in adapter order
      expect([...whole.tensors.keys()].filter((n) => n.includes('lora_A')).length).toBeGreaterThan(0);
      expect(Number(partial.manifest.totalBytes)).toBeLessThan(Number(whole.manifest.totalBytes));
      expect(partial.manifest.sha256.equals(task.adapterSha256)).toBe(false); // the partial payload's own hash
      const rebuilt = completeAdapter(whole.tensors, partial.tensors, task.adapterSha256)!;
      expect([...rebuilt.keys()]).toEqual([...whole.tensors.keys()]);
      for (const [name, t] of rebuilt) expect(Buffer.from(bytesOf(t.data)).equals(bytesOf(whole.tensors.get(name)!.data))).toBe(true);
    });
  });

  it('FetchAdapter – a held tensor that differs, or a foreign one received, makes completion fail (the client then fetches in full)', async () => {
    await withTask('ffa', async (task) => {
      const whole = await client.download(task.runId, task.adapterSha256);
      const partial = await client.download(task.runId, task.adapterSha256, true);
      const frozen = [...whole.tensors.keys()].find((n) => !task.uploadTensors.includes(n))!;
      const altered = new Map(whole.tensors);
      const data = whole.tensors.get(frozen)!.data.slice();
      data[0]! += 1;
      altered.set(frozen, { shape: whole.tensors.get(frozen)!.shape, data });
      expect(completeAdapter(altered, partial.tensors, task.adapterSha256)).toBeUndefined();
      const foreign = new Map(partial.tensors).set('not.an.adapter.tensor', { shape: [1], data: new Float32Array(1) });
      expect(completeAdapter(whole.tensors, foreign, task.adapterSha256)).toBeUndefined();
    });
  });

  it('FetchAdapter – under exact aggregation nothing is frozen, so omit_frozen answers with the whole adapter', async () => {
    await withTask('exact', async (task) => {
      const answer = await client.download(task.runId, task.adapterSha256, true);
      expect(answer.manifest.sha256.equals(task.adapterSha256)).toBe(true);
      expect([...answer.tensors.keys()].some((n) => n.includes('lora_A'))).toBe(true);
    });
  });
});
