/**
 * O3 unlearning end to end, with real processes and real gRPC on 127.0.0.1: a coordinator process and two
 * `lethe client run` processes train a run for two rounds; the operator asks client 0 to forget one SpamAssassin group
 * of its local data; the client gets the unlearning task, trains the package and uploads it; the coordinator verifies
 * and activates it; Predict then gates client 0's forget mails (weight > 0.9, prediction changed) and leaves unrelated
 * text alone (weight ≈ 0).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readAdminToken } from '../../src/auth/admin-token.js';
import { DEFAULT_PARTITION_SEED, loadLocalData } from '../../src/client/local-data.js';
import type { Example } from '../../src/data/dataset.js';
import { AdminApi } from '../../src/demo/admin.js';
import type { GPT2Config } from '../../src/model/gpt2.js';
import type { UnlearningRequest } from '../../src/wire/admin-messages.js';
import { callUnary, createClient } from '../../src/wire/services.js';
import { loadLetheProto } from '../../src/wire/proto.js';
import { adminMetadata } from '../coordinator/helpers.js';
import { tempDir, writeTestModel } from '../client/helpers.js';
import { freePort, killAll, lethe, printOutputs, requireFreshBuild, type LetheProcess, waitUntil } from './harness.js';

const E2E_MODEL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });
const CLIENTS = 2;
const SHARES = 10; // each client holds one tenth of the train split: a few hundred mails
const ALPHA = 1;

describe('unlearning end to end', () => {
  const dir = tempDir('lethe-e2e-unl-');
  const coordinatorDir = join(dir.path, 'coordinator');
  const clientDir = (i: number): string => join(dir.path, `client-${i}`);
  let address = '';
  let token = '';
  let coordinator: LetheProcess;
  let admin: AdminApi;
  const clients: LetheProcess[] = [];

  beforeAll(async () => {
    requireFreshBuild();
    const baseModel = await writeTestModel(dir.path, E2E_MODEL);
    address = `127.0.0.1:${await freePort()}`;
    coordinator = lethe(['coordinator', 'start', '--port', address.split(':')[1]!, '--host', '127.0.0.1', '--data-dir', coordinatorDir, '--backend', 'wasm']);
    await coordinator.waitFor(/listening on/, 30_000);
    token = await readAdminToken(coordinatorDir);
    admin = new AdminApi(address, token);
    const join = await admin.createJoinToken(CLIENTS, 600, 'e2e-unlearning');
    const enrollments = Array.from({ length: CLIENTS }, (_, i) =>
      lethe(['client', 'enroll', '--coordinator', address, '--token', join.token, '--name', `unl-${i}`, '--data-dir', clientDir(i), '--modes', 'backprop', '--backend', 'wasm']),
    );
    expect(await Promise.all(enrollments.map((p) => p.exited))).toEqual([0, 0]);
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(lethe(['client', 'run', '--data-dir', clientDir(i), '--data', 'builtin:spam', '--partition', `${i}/${SHARES}`, '--alpha', String(ALPHA), '--backend', 'wasm', '--json']));
    }
    await Promise.all(clients.map((c) => c.waitFor(/"type":"connected"/, 60_000)));
    const run = await admin.createRun({
      name: 'e2e-unlearning',
      base_model: baseModel,
      task: 'builtin:spam',
      labels: ['ham', 'spam'],
      seq_len: 32,
      lora: { r: 4, alpha: 8, targets: ['attn.c_attn', 'attn.c_proj'], seed: 'lethe' },
      sample_rate: 1,
      min_clients: CLIENTS,
      rounds: 3, // 2 rounds of 5 steps once left no group with 4 of 6 mails right in a full parallel suite
      round_deadline_s: 60,
      local: { steps: 10, batch_size: 16, lr: 0.02 },
      seed: 'lethe-run',
    });
    runId = run.runId;
    await waitUntil(async () => ((await admin.getRun(runId)).state === 'RUN_STATE_COMPLETED' ? true : undefined), 60_000, 'the run to complete');
  }, 120_000);
  let runId = '';

  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => printOutputs(coordinator, clients));
  });

  afterAll(async () => {
    admin?.close();
    await killAll(coordinator, clients);
    dir.remove();
  });

  it('e2e – a client forgets one group of its data: the request goes active, its mails are gated (> 0.9) and their predictions flip, unrelated text is not gated', async () => {
    // Arrange: of the small groups client 0 holds (the test reads the same partition the client process loads), the
    // one the trained run classifies best, and up to 6 of its mails it classifies right: forgetting must undo those.
    // (The run is short, so its model is weak and a 6-mail sample of the best group once had only 3 right.)
    const local = await loadLocalData({ source: 'builtin:spam', partition: { index: 0, count: SHARES, alpha: ALPHA, seed: DEFAULT_PARTITION_SEED } });
    const byGroup = new Map<string, Example[]>();
    for (const ex of local.examples) byGroup.set(ex.meta['group']!, [...(byGroup.get(ex.meta['group']!) ?? []), ex]);
    const scored = await Promise.all(
      [...byGroup].filter(([, exs]) => exs.length >= 8 && exs.length <= 150).map(async ([g, exs]) => {
        const probes = exs.slice(0, 16);
        const predictions = await Promise.all(probes.map((e) => admin.predict(runId, e.text, true)));
        const right = probes.map((e, i) => ({ example: e, before: predictions[i]! })).filter((r) => r.before.predictedIndex === r.example.label);
        return { group: g, right };
      }),
    );
    const { group, right } = scored.sort((a, b) => b.right.length - a.right.length)[0]!;
    const sample = right.slice(0, 6).map((r) => r.example);
    const before = right.slice(0, 6).map((r) => r.before);
    const forgetTexts = sample.map((e) => e.text);
    const clientId = (await admin.clients()).find((c) => c.name === 'unl-0')!.clientId;
    const adminClient = createClient(loadLetheProto(), 'admin', address, (await import('@grpc/grpc-js')).credentials.createInsecure());
    const settings = { metadata: adminMetadata(token) };

    // Act: wrong-label targets, so that every forget mail's prediction should flip (the default input_hash_label
    // targets go to chance: about half keep their label)
    const submitted = await callUnary(adminClient, 'SubmitUnlearning', { runId, clientIds: [clientId], forget: { group }, targetPolicy: 'random_wrong_label', reason: 'e2e: user asked to be forgotten' }, settings);
    const done = await waitUntil(
      async () => {
        const r: UnlearningRequest = await callUnary(adminClient, 'GetUnlearning', { requestId: submitted.requestId }, settings);
        return r.state === 'UNLEARNING_STATE_COMPLETED' || r.state === 'UNLEARNING_STATE_FAILED' ? r : undefined;
      },
      // Training the adapter and fitting the detector takes ~12 s quiet; with the Gaussian n-gram block it once took
      // close to a minute on 2 loaded cores, hence the margin.
      120_000,
      'the unlearning request to finish',
    );
    const after = await Promise.all(forgetTexts.map((t) => admin.predict(runId, t, true)));
    const unrelated = await Promise.all(['The committee will meet on Thursday to discuss the budget.', 'Lunch at noon? I will bring the sandwiches.'].map((t) => admin.predict(runId, t, true)));
    adminClient.close();

    // Assert
    expect(submitted.state).toBe('UNLEARNING_STATE_PENDING');
    expect(done.state, done.message).toBe('UNLEARNING_STATE_COMPLETED');
    expect(done.adapterSha256.length).toBe(32);
    expect(before.every((p) => p.gates.length === 0)).toBe(true);
    for (const p of after) expect(p.gates[0]!.weight).toBeGreaterThan(0.9);
    const correctAfter = after.filter((p, i) => p.predictedIndex === sample[i]!.label).length;
    expect(sample.length).toBeGreaterThanOrEqual(4); // mails the run got right before
    expect(correctAfter).toBeLessThanOrEqual(sample.length / 3);
    for (const p of unrelated) expect(p.gates[0]!.weight).toBeLessThan(0.1);
  }, 150_000);
});
