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
import { AdminApi } from '../../src/demo/admin.js';
import type { GPT2Config } from '../../src/model/gpt2.js';
import type { UnlearningRequest } from '../../src/wire/admin-messages.js';
import { callUnary, createClient } from '../../src/wire/services.js';
import { loadLetheProto } from '../../src/wire/proto.js';
import { adminMetadata } from '../coordinator/helpers.js';
import { tempDir, writeTestModel } from '../client/helpers.js';
import { freePort, lethe, requireFreshBuild, waitUntil, type LetheProcess } from './harness.js';

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
      rounds: 2,
      round_deadline_s: 60,
      local: { steps: 5, batch_size: 16, lr: 0.02 },
      seed: 'lethe-run',
    });
    runId = run.runId;
    await waitUntil(async () => ((await admin.getRun(runId)).state === 'RUN_STATE_COMPLETED' ? true : undefined), 60_000, 'the run to complete');
  }, 120_000);
  let runId = '';

  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      process.stderr.write(`--- coordinator output ---\n${coordinator?.output().slice(-4000)}\n`);
      clients.forEach((c, i) => process.stderr.write(`--- client ${i} output ---\n${c.output().slice(-3000)}\n`));
    });
  });

  afterAll(async () => {
    admin?.close();
    await Promise.all([...clients.map((c) => c.kill('SIGKILL')), coordinator?.kill('SIGKILL')]);
    dir.remove();
  });

  it('e2e – a client forgets one group of its data: the request goes active, its mails are gated (> 0.9) and relabelled, unrelated text is not gated', async () => {
    // Arrange: the smallest group client 0 holds (the test reads the same partition the client process loads)
    const local = await loadLocalData({ source: 'builtin:spam', partition: { index: 0, count: SHARES, alpha: ALPHA, seed: DEFAULT_PARTITION_SEED } });
    const counts = new Map<string, number>();
    for (const ex of local.examples) counts.set(ex.meta['group']!, (counts.get(ex.meta['group']!) ?? 0) + 1);
    const [group] = [...counts].filter(([, n]) => n >= 8).sort((a, b) => a[1] - b[1])[0]!;
    const forgetTexts = local.examples.filter((e) => e.meta['group'] === group).slice(0, 6).map((e) => e.text);
    const clientId = (await admin.clients()).find((c) => c.name === 'unl-0')!.clientId;
    const before = await Promise.all(forgetTexts.map((t) => admin.predict(runId, t, true)));
    const adminClient = createClient(loadLetheProto(), 'admin', address, (await import('@grpc/grpc-js')).credentials.createInsecure());
    const settings = { metadata: adminMetadata(token) };

    // Act
    const submitted = await callUnary(adminClient, 'SubmitUnlearning', { runId, clientIds: [clientId], forget: { group }, reason: 'e2e: user asked to be forgotten' }, settings);
    const done = await waitUntil(
      async () => {
        const r: UnlearningRequest = await callUnary(adminClient, 'GetUnlearning', { requestId: submitted.requestId }, settings);
        return r.state === 'UNLEARNING_STATE_COMPLETED' || r.state === 'UNLEARNING_STATE_FAILED' ? r : undefined;
      },
      60_000,
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
    const changed = after.filter((p, i) => p.predictedIndex !== before[i]!.predictedIndex).length;
    expect(changed).toBeGreaterThanOrEqual(forgetTexts.length / 2);
    for (const p of unrelated) expect(p.gates[0]!.weight).toBeLessThan(0.1);
  }, 90_000);
});
