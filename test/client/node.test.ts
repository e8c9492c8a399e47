/**
 * A ClientNode against a live in-process coordinator over real gRPC on 127.0.0.1: it trains and uploads the tasks of
 * a run until the run completes, and a revoked client stops with a clear refusal.
 */
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enroll } from '../../src/client/enroll.js';
import { ClientRefusedError } from '../../src/client/errors.js';
import type { ClientEvent } from '../../src/client/events.js';
import { clientNodeConfig } from '../../src/client/config.js';
import { ClientNode } from '../../src/client/node.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { AdminApi } from '../../src/demo/admin.js';
import { loadLetheProto } from '../../src/wire/proto.js';
import { runConfig, tempDir, writeTestModel } from './helpers.js';

const proto = loadLetheProto();

async function waitFor<T>(check: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('client node', () => {
  const dir = tempDir('lethe-client-node-');
  let coordinator: Coordinator;
  let admin: AdminApi;
  let baseModel: string;

  beforeAll(async () => {
    baseModel = await writeTestModel(dir.path);
    coordinator = new Coordinator({ dataDir: join(dir.path, 'coordinator'), port: 0, log: () => undefined, waitForClientsMs: 50 });
    await coordinator.start();
    admin = new AdminApi(coordinator.address, coordinator.adminToken);
  });

  afterAll(async () => {
    admin.close();
    await coordinator.close();
    dir.remove();
  });

  async function enrolled(name: string): Promise<string> {
    const token = await admin.createJoinToken(1, 600);
    const dataDir = join(dir.path, name);
    await enroll({
      proto,
      address: coordinator.address,
      credentials: credentials.createInsecure(),
      joinToken: token.token,
      name,
      dataDir,
      memoryMb: 1024,
      modes: ['TRAINING_MODE_BACKPROP'],
      backend: 'cpu',
    });
    return dataDir;
  }

  function startNode(dataDir: string): Promise<ClientNode> {
    return ClientNode.start(
      clientNodeConfig({
        dataDir,
        data: { source: 'builtin:spam', partition: { index: 0, count: 20, alpha: 100, seed: 'p' } },
        backend: 'cpu',
        log: () => undefined,
      }),
      proto,
    );
  }

  it('client node – trains and uploads every round of a run until it completes', async () => {
    // Arrange
    const node = await startNode(await enrolled('trainer'));
    const events: ClientEvent[] = [];
    void (async () => {
      for await (const e of node.status()) events.push(e);
    })();

    // Act
    const run = await admin.createRun(runConfig(baseModel, { rounds: 2 }));
    const done = await waitFor(async () => {
      const r = await admin.getRun(run.runId);
      return r.state === 'RUN_STATE_COMPLETED' ? r : undefined;
    }, 45_000, 'the run to complete');
    await node.drain();

    // Assert
    const rounds = await admin.rounds(run.runId);
    expect(done.currentRound).toBe(2);
    expect(rounds.map((r) => [r.state, r.accepted])).toEqual([
      ['ROUND_STATE_COMPLETED', 1],
      ['ROUND_STATE_COMPLETED', 1],
    ]);
    expect(rounds[0]!.metrics.mean_local_loss).toBeGreaterThan(0);
    // Round 2's adapter came without FFA's frozen lora_A (the client holds it from round 1): had the client's rebuilt
    // adapter not hashed to the task's, it would have fetched it again in full, and round 2 would show more bytes.
    expect(rounds[1]!.metrics.bytes_down).toBeLessThan(0.75 * rounds[0]!.metrics.bytes_down!);
    const uploads = events.filter((e) => e.type === 'uploaded');
    expect(uploads.map((e) => e.type === 'uploaded' && e.result)).toEqual(['RESULT_ACCEPTED', 'RESULT_ACCEPTED']);
    expect(events.at(-1)).toEqual({ type: 'closed' });
    expect(await node.closed()).toBeUndefined();
  });

  it('client node – a revoked client stops with ClientRefusedError naming the revocation', async () => {
    // Arrange
    const node = await startNode(await enrolled('revoked'));
    await waitFor(async () => ((await admin.clients()).find((c) => c.clientId === node.clientId)?.online ? true : undefined), 10_000, 'online');

    // Act
    await admin.revokeClient(node.clientId, 'test');
    const error = await Promise.race([node.closed(), new Promise((r) => setTimeout(() => r('timeout'), 20_000))]);

    // Assert
    expect(error).toBeInstanceOf(ClientRefusedError);
    expect((error as ClientRefusedError).reason).toBe('revoked_client');
    expect((error as Error).message).toMatch(/revoked/);
    expect(node.isClosed).toBe(true);
  });
});
