/**
 * Unlearning on the coordinator after an upload: verification against the earlier active requests, activation, and the
 * gates Predict serves. Real store (SQLite), a real package trained on a tiny model with SpamAssassin groups.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import type { CoordinatorCore } from '../../src/coordinator/core.js';
import type { RunContext } from '../../src/coordinator/runs.js';
import { UnlearningGates, verifyAndActivate } from '../../src/coordinator/unlearning.js';
import { unlearningExcluded } from '../../src/coordinator/unlearning-tasks.js';
import type { GPT2 } from '../../src/model/gpt2.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite.js';
import { DEFAULT_UNLEARNING_REQUEST, encodeUnlearningPackage, runUnlearningRequest, type UtilityAdapter } from '../../src/unlearning/index.js';
import { SMALL, UTILITY_LORA, encode, groupSplit, utilityScenario } from '../unlearning/fixtures.js';
import { tempDir } from './helpers.js';

describe('unlearning activation and serving', () => {
  const dir = tempDir('lethe-unl-');
  let store: SqliteStore;
  let core: CoordinatorCore;
  let model: GPT2;
  let utility: UtilityAdapter;
  let bytes: Uint8Array;
  const ctx = { id: 'run_u', layout: { model: SMALL, lora: UTILITY_LORA } } as unknown as RunContext;
  const forget = encode(groupSplit().train('spam-2', 16));
  const generic = encode(['easy-ham-1', 'hard-ham-1'].flatMap((g) => groupSplit().train(g, 16)));

  async function verifyingRequest(id: string) {
    await store.unlearning.create({ id, runId: ctx.id, clientIds: ['cl_a'], selector: { group: 'spam-2' }, reason: 'test' });
    for (const [from, to] of [['queued', 'assigned'], ['assigned', 'training'], ['training', 'verifying']] as const) await store.unlearning.transition(id, from, to);
    return (await store.unlearning.get(id))!;
  }

  beforeAll(async () => {
    await initBackend('cpu');
    store = openSqliteStore(join(dir.path, 'store.sqlite'));
    core = { store, config: { log: () => undefined } } as unknown as CoordinatorCore;
    ({ model, utility } = await utilityScenario(4, 4));
    await store.clients.enroll({ id: 'cl_a', name: 'a', publicKey: new Uint8Array(32), capabilities: {} });
    await store.runs.create({ id: ctx.id, config: {} });
    const config = { ...DEFAULT_UNLEARNING_REQUEST, adapter: { ...DEFAULT_UNLEARNING_REQUEST.adapter, steps: 10 } };
    bytes = encodeUnlearningPackage(await runUnlearningRequest(model, utility, forget, generic, [], config), SMALL);
  }, 60_000);
  afterAll(() => {
    store.close();
    model.dispose();
    dir.remove();
  });

  it('verify – a valid package becomes active, and Predict gates its forget samples near 1 and unrelated text near 0', async () => {
    // Arrange
    const record = await verifyingRequest('unl_1');
    const gates = new UnlearningGates(core);

    // Act
    const state = await verifyAndActivate(core, record, bytes, SMALL);
    await gates.prepare(ctx, model, utility.adapter);
    const weight = (ids: Int32Array, mask: Float32Array, row: number): number =>
      tf.tidy(() => {
        const t = forget.seqLen;
        const g = gates.gates(ctx, tf.tensor2d(ids.subarray(row * t, (row + 1) * t), [1, t], 'int32'), tf.tensor2d(mask.subarray(row * t, (row + 1) * t), [1, t]));
        return g.explain[0]!.weight;
      });
    const other = encode(groupSplit().test('easy-ham-2', 8));

    // Assert
    expect(state).toBe('active');
    const active = (await store.unlearning.get('unl_1'))!;
    expect(active.state).toBe('active');
    expect(active.resultAdapterSha).toMatch(/^[0-9a-f]{64}$/);
    expect(Object.keys(active.metrics)).toContain('calibration_auroc');
    for (let i = 0; i < 4; i++) expect(weight(forget.ids, forget.mask, i)).toBeGreaterThan(0.9);
    const unrelated = Array.from({ length: 8 }, (_, i) => weight(other.ids, other.mask, i));
    expect(unrelated.filter((w) => w < 0.1).length).toBeGreaterThanOrEqual(6);
    gates.dispose();
  });

  it('verify – a package not orthogonal to an active one fails with the PackageError code as reason, and is never served', async () => {
    // Arrange: the same adapter again as request 2 (maximal overlap with request 1)
    const record = await verifyingRequest('unl_2');

    // Act
    const state = await verifyAndActivate(core, record, bytes, SMALL);

    // Assert
    expect(state).toBe('failed');
    const failed = (await store.unlearning.get('unl_2'))!;
    expect(failed.failureReason).toMatch(/^\w+: /);
    expect(failed.resultAdapterSha).toBeNull();
    expect((await store.unlearning.list({ runId: ctx.id, states: ['active'] })).map((r) => r.id)).toEqual(['unl_1']);
  });

  it('sampling – clients with a pending request, or whose active request forgot all their data, are excluded; others stay', async () => {
    // Arrange: cl_a has request 1 active (part of its data) and request 2 failed
    for (const id of ['cl_b', 'cl_c']) await store.clients.enroll({ id, name: id, publicKey: new Uint8Array(32).fill(id === 'cl_b' ? 1 : 2), capabilities: {} });
    await store.unlearning.create({ id: 'unl_b', runId: ctx.id, clientIds: ['cl_b'], selector: { label: 'spam' }, reason: 'all of it' });
    for (const [from, to] of [['queued', 'assigned'], ['assigned', 'training'], ['training', 'verifying']] as const) await store.unlearning.transition('unl_b', from, to);
    const { sha256 } = await store.blobs.put(bytes);
    await store.unlearning.transition('unl_b', 'verifying', 'active', { resultAdapterSha: sha256, metrics: { forget_fraction: 1 } });
    await store.unlearning.create({ id: 'unl_c', runId: ctx.id, clientIds: ['cl_c'], selector: { label: 'ham' }, reason: 'pending' });

    // Act
    const excluded = await unlearningExcluded(core, ctx.id);

    // Assert
    expect([...excluded].sort()).toEqual(['cl_b', 'cl_c']);
  });
});
