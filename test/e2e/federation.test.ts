/**
 * End to end, with real processes and real gRPC on 127.0.0.1: a coordinator process, three `lethe client run`
 * processes enrolled with `lethe client enroll`, and runs on the built-in SpamAssassin task (non-IID Dirichlet
 * shares) over a small GPT-2 checkpoint. The tests share the fleet and run in order.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readAdminToken } from '../../src/auth/admin-token.js';
import { initBackend } from '../../src/backend/backend.js';
import { enroll } from '../../src/client/enroll.js';
import { AdminApi } from '../../src/demo/admin.js';
import { untrainedAccuracy } from '../../src/demo/demo.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import type { GPT2Config } from '../../src/model/gpt2.js';
import type { Run } from '../../src/wire/admin-messages.js';
import { loadLetheProto } from '../../src/wire/proto.js';
import { tempDir, writeTestModel } from '../client/helpers.js';
import { events, freePort, killAll, lethe, printOutputs, requireFreshBuild, type LetheProcess, waitUntil } from './harness.js';

/** Wider than the unit tests' model so that the spam signal is learnable in a few rounds; still milliseconds per step. */
const E2E_MODEL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });
const HALF_UPLOAD = fileURLToPath(new URL('./fixtures/half-upload.mjs', import.meta.url));
const CLIENTS = 3;

describe('end to end', () => {
  const dir = tempDir('lethe-e2e-');
  const coordinatorDir = join(dir.path, 'coordinator');
  const clientDir = (i: number): string => join(dir.path, `client-${i}`);
  let port = 0;
  let address = '';
  let coordinator: LetheProcess;
  let admin: AdminApi;
  let baseModel = '';
  const clients: LetheProcess[] = [];

  function runConfig(extra: Record<string, unknown>): Record<string, unknown> {
    return {
      name: 'e2e',
      base_model: baseModel,
      task: 'builtin:spam',
      labels: ['ham', 'spam'],
      seq_len: 32,
      lora: { r: 4, alpha: 8, targets: ['attn.c_attn', 'attn.c_proj'], seed: 'lethe' },
      sample_rate: 1,
      min_clients: CLIENTS,
      round_deadline_s: 90,
      local: { steps: 10, batch_size: 16, lr: 0.02 },
      eval_data: 'builtin:spam',
      seed: 'lethe-run',
      ...extra,
    };
  }

  async function startCoordinator(): Promise<void> {
    coordinator = lethe(['coordinator', 'start', '--port', String(port), '--host', '127.0.0.1', '--data-dir', coordinatorDir, '--backend', 'wasm']);
    await coordinator.waitFor(/listening on/, 30_000);
  }

  async function finished(runId: string, ms: number): Promise<Run> {
    return waitUntil(async () => {
      const run = await admin.getRun(runId);
      return run.state === 'RUN_STATE_RUNNING' || run.state === 'RUN_STATE_PENDING' ? undefined : run;
    }, ms, `run ${runId} to finish`);
  }

  beforeAll(async () => {
    requireFreshBuild();
    await initBackend('cpu'); // for the untrained adapter's accuracy, measured here
    baseModel = await writeTestModel(dir.path, E2E_MODEL);
    port = await freePort();
    address = `127.0.0.1:${port}`;
    await startCoordinator();
    admin = new AdminApi(address, await readAdminToken(coordinatorDir));
    const token = await admin.createJoinToken(CLIENTS, 600, 'e2e');
    const enrollments = Array.from({ length: CLIENTS }, (_, i) =>
      lethe(['client', 'enroll', '--coordinator', address, '--token', token.token, '--name', `e2e-${i}`, '--data-dir', clientDir(i), '--modes', 'backprop', '--backend', 'wasm']),
    );
    expect(await Promise.all(enrollments.map((p) => p.exited))).toEqual([0, 0, 0]);
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(
        lethe(['client', 'run', '--data-dir', clientDir(i), '--data', 'builtin:spam', '--partition', `${i}/${CLIENTS}`, '--alpha', '1', '--backend', 'wasm', '--json']),
      );
    }
    await Promise.all(clients.map((c) => c.waitFor(/"type":"connected"/, 60_000)));
  }, 120_000);

  // A failed step says what the processes said.
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => printOutputs(coordinator, clients));
  });

  afterAll(async () => {
    admin?.close();
    await killAll(coordinator, clients);
    dir.remove();
  });

  it('e2e – three client processes over real gRPC raise the global test accuracy round after round', async () => {
    // Arrange
    const config = runConfig({ rounds: 4 });
    const initial = untrainedAccuracy(await loadCheckpoint(baseModel), config as never);

    // Act
    const run = await admin.createRun(config);
    const done = await finished(run.runId, 150_000);

    // Assert
    const rounds = await admin.rounds(run.runId);
    const accuracy = rounds.map((r) => r.metrics.eval_accuracy ?? Number.NaN);
    expect(done.state).toBe('RUN_STATE_COMPLETED');
    expect(rounds.map((r) => [r.state, r.accepted])).toEqual(Array.from({ length: 4 }, () => ['ROUND_STATE_COMPLETED', CLIENTS]));
    expect(rounds.every((r) => r.metrics.mean_local_loss! > 0 && r.metrics.bytes_up! > 0 && r.metrics.bytes_down! > 0)).toBe(true);
    // Untrained, the head guesses; trained, the adapter beats both the guess and the majority class (68.6% ham).
    expect(accuracy.at(-1)!).toBeGreaterThan(initial + 0.05);
    expect(accuracy.at(-1)!).toBeGreaterThan(0.7);

    // And the trained adapter answers `lethe predict` with a probability per label.
    const predict = lethe(['predict', '--coordinator', address, '--data-dir', coordinatorDir, '--run', run.runId, '--text', 'Subject: WIN CASH NOW!!! click here', '--json']);
    expect(await predict.exited).toBe(0);
    const answer = JSON.parse(predict.stdout()) as { probabilities: { label: string; probability: number }[]; predictedLabel: string };
    expect(answer.probabilities.map((p) => p.label)).toEqual(['ham', 'spam']);
    expect(answer.probabilities.reduce((s, p) => s + p.probability, 0)).toBeCloseTo(1, 5);
  }, 180_000);

  it('e2e – clients reconnect by themselves after the coordinator is killed (kill -9) and restarted, and the run completes', async () => {
    // Arrange
    const run = await admin.createRun(runConfig({ rounds: 3 }));
    await waitUntil(async () => ((await admin.rounds(run.runId)).some((r) => r.state === 'ROUND_STATE_COMPLETED') ? true : undefined), 90_000, 'round 1');

    // Act
    await coordinator.kill('SIGKILL');
    await Promise.all(clients.map((c) => c.waitFor(/"type":"disconnected"/, 30_000)));
    await startCoordinator();
    const done = await finished(run.runId, 150_000);

    // Assert
    expect(done.state).toBe('RUN_STATE_COMPLETED');
    expect((await admin.rounds(run.runId)).every((r) => r.state === 'ROUND_STATE_COMPLETED')).toBe(true);
    for (const c of clients) {
      const types = events(c).map((e) => e.type);
      expect(c.child.exitCode).toBeNull();
      expect(types.lastIndexOf('connected')).toBeGreaterThan(types.indexOf('disconnected'));
    }
  }, 240_000);

  it('e2e – a client SIGKILLed mid-upload leaves no update behind and the round completes with the rest', async () => {
    // Arrange: a fourth client that dies halfway through its upload
    const token = await admin.createJoinToken(1, 600, 'half-upload');
    await enroll({ proto: loadLetheProto(), address, credentials: credentials.createInsecure(), joinToken: token.token, name: 'half', dataDir: clientDir(9), memoryMb: 512, modes: ['TRAINING_MODE_BACKPROP'], backend: 'cpu' });
    const half = spawn(process.execPath, [HALF_UPLOAD, clientDir(9)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let said = '';
    half.stdout!.setEncoding('utf8').on('data', (s: string) => (said += s));
    half.stderr!.setEncoding('utf8').on('data', (s: string) => (said += s));
    const halfExit = new Promise<string | number>((resolve) => half.once('exit', (code, signal) => resolve(signal ?? code ?? '')));
    await waitUntil(async () => ((await admin.clients()).filter((c) => c.online).length === CLIENTS + 1 ? true : undefined), 30_000, 'four clients online');

    // Act
    const run = await admin.createRun(runConfig({ rounds: 1, round_deadline_s: 20 }));
    expect(await halfExit).toBe('SIGKILL');
    const done = await finished(run.runId, 90_000);

    // Assert
    const [round] = await admin.rounds(run.runId);
    expect(said).toMatch(/killing mid-upload/);
    expect(done.state).toBe('RUN_STATE_COMPLETED');
    expect(round).toMatchObject({ state: 'ROUND_STATE_COMPLETED', sampled: CLIENTS + 1, accepted: CLIENTS, failed: 1 });
  }, 150_000);

  it('e2e – a revoked client and an expired join token are refused with a clear message and exit code 3', async () => {
    // Arrange
    const expired = await admin.createJoinToken(1, 1, 'expires at once');
    await new Promise((r) => setTimeout(r, 1500));
    const victim = clients[CLIENTS - 1]!;
    const victimId = (await admin.clients()).find((c) => c.name === `e2e-${CLIENTS - 1}`)!.clientId;

    // Act
    const late = lethe(['client', 'enroll', '--coordinator', address, '--token', expired.token, '--data-dir', clientDir(7), '--modes', 'backprop', '--backend', 'wasm']);
    await admin.revokeClient(victimId, 'e2e test');
    const [lateCode, victimCode] = await Promise.all([late.exited, victim.exited]);

    // Assert
    expect(lateCode).toBe(3);
    expect(late.output()).toMatch(/join token has expired; ask the operator for a new one/);
    expect(victimCode).toBe(3);
    expect(victim.output()).toMatch(/revoked_client.*enroll again with a new join token/);
  }, 60_000);
});
