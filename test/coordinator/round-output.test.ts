/**
 * The memory of a round's new adapter (round-close.ts prepareOutput): set aside and faulted in by the coordinator's
 * worker when the round opens, then filled by the close and stored as it lies. A live coordinator over real gRPC;
 * the worker's prefault is wrapped (not replaced) to learn which buffers it was given.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hfConfigJson } from '../../src/model/checkpoint.js';
import type { GPT2Config } from '../../src/model/gpt2.js';
import { PAGE_ALIGNED_MIN_BYTES } from '../../src/tensors/page-aligned.js';
import { makeDelta, runJson, tempDir, waitFor } from './helpers.js';
import { liveCoordinator, type LiveCoordinator } from './live.js';

/** Wide enough that the adapter (all four projections, r 32) passes PAGE_ALIGNED_MIN_BYTES; no weights are loaded. */
const MODEL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 256, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });

describe('round output', () => {
  const dir = tempDir('lethe-round-output-');
  let live: LiveCoordinator;
  let baseModel: string;

  beforeAll(async () => {
    baseModel = join(dir.path, 'base');
    await mkdir(baseModel);
    await writeFile(join(baseModel, 'config.json'), JSON.stringify(hfConfigJson(MODEL)));
    live = await liveCoordinator(dir.path);
  });

  afterAll(async () => {
    await live.close();
    dir.remove();
  });

  it('round close – stores the new adapter in the memory the coordinator set aside and faulted in when the round opened', async () => {
    // Prepare: record what the worker is asked to fault in (uploads this small get no reserved buffer).
    const { coordinator, admin, client } = live;
    const { digests, store } = coordinator.core;
    const prefault = digests.prefault.bind(digests);
    const faulted: SharedArrayBuffer[] = [];
    digests.prefault = (buffer) => {
      faulted.push(buffer);
      return prefault(buffer);
    };
    const lora = { r: 32, alpha: 64, targets: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] };
    const { runId } = await admin.createRun(runJson(baseModel, { name: 'round-output', lora, rounds: 1, min_clients: 1 }));
    // Execute
    const task = (await client.pullTask(5000))!;
    const global = await client.fetchAdapter(task);
    await client.push(task, makeDelta(task, global, () => 1e-3));
    const round = await waitFor(async () => {
      const r = await store.rounds.get(runId, 1);
      return r?.state === 'closed' ? r : undefined;
    }, 20_000, 'round 1 to close');
    // Assert
    const adapter = (await store.blobs.get(round.adapterShaAfter!))!;
    expect(adapter.byteLength).toBeGreaterThanOrEqual(PAGE_ALIGNED_MIN_BYTES);
    expect(faulted).toHaveLength(1);
    expect(adapter.buffer).toBe(faulted[0]);
  });
});
