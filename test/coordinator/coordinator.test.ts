/**
 * The Coordinator's lifecycle (start, status events, drain, close, closed, disposal), the standard services and the
 * inference service.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { CoordinatorClosedError } from '../../src/coordinator/errors.js';
import type { CoordinatorEvent } from '../../src/coordinator/events.js';
import { RpcError } from '../../src/wire/errors.js';
import { callUnary, createClient } from '../../src/wire/services.js';
import { Admin, adminMetadata, proto, runJson, tempDir, writeTestModel } from './helpers.js';

function rawCall(address: string, path: string, bytes: Buffer): Promise<Buffer> {
  const client = new Client(address, credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) =>
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, new Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res!))),
  ).finally(() => client.close());
}

describe('coordinator lifecycle', () => {
  it('lifecycle – status() reports the run and the drain, drain closes, closed() resolves, later calls throw CoordinatorClosedError', async () => {
    // Arrange
    const dir = tempDir('lethe-life-');
    const coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: () => undefined });
    await coordinator.start();
    const events = coordinator.status();
    const seen: CoordinatorEvent['type'][] = [];
    const collecting = (async () => {
      for await (const e of events) seen.push(e.type);
    })();
    const admin = new Admin(coordinator.address, coordinator.adminToken);
    await admin.createRun(runJson(await writeTestModel(dir.path), { rounds: 1 }));
    admin.close();

    // Act
    await coordinator.drain();
    await collecting;

    // Assert
    expect(seen).toEqual(['run_created', 'draining', 'closed']);
    expect(await coordinator.closed()).toBeUndefined();
    await expect(coordinator.start()).rejects.toBeInstanceOf(CoordinatorClosedError);
    await expect(coordinator.drain()).rejects.toBeInstanceOf(CoordinatorClosedError);
    expect(() => coordinator.status()).toThrow(CoordinatorClosedError);
    await coordinator.close(); // idempotent
    await coordinator[Symbol.asyncDispose]();
    dir.remove();
  });

  it('lifecycle – a restart on the same data dir keeps the admin token and the coordinator id', async () => {
    const dir = tempDir('lethe-life2-');
    const ids: string[] = [];
    const tokens: string[] = [];
    for (let i = 0; i < 2; i++) {
      await using coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: () => undefined });
      await coordinator.start();
      const admin = new Admin(coordinator.address, coordinator.adminToken);
      ids.push((await admin.call('Status', {})).coordinatorId);
      tokens.push(coordinator.adminToken);
      admin.close();
    }
    expect(ids[0]).toBe(ids[1]);
    expect(tokens[0]).toBe(tokens[1]);
    dir.remove();
  });

  it('services – health reports SERVING and reflection lists the lethe services', async () => {
    const dir = tempDir('lethe-std-');
    await using coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: () => undefined });
    await coordinator.start();
    const health = await rawCall(coordinator.address, '/grpc.health.v1.Health/Check', Buffer.alloc(0));
    expect([...health]).toEqual([0x08, 0x01]);
    // ServerReflectionRequest { list_services: "*" } (field 7)
    const reflection = new Client(coordinator.address, credentials.createInsecure());
    const listed = await new Promise<string>((resolve, reject) => {
      const call = reflection.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', (b: Buffer) => b, (b: Buffer) => b, new Metadata(), {});
      call.on('data', (b: Buffer) => {
        resolve(b.toString('latin1'));
        call.end();
      });
      call.on('error', reject);
      call.write(Buffer.from([0x3a, 0x01, 0x2a]));
    });
    reflection.close();
    for (const s of ['lethe.v1.FleetService', 'lethe.v1.AdminService', 'lethe.v1.EnrollmentService', 'lethe.v1.InferenceService']) expect(listed).toContain(s);
    dir.remove();
  });

  it('inference – Predict returns label probabilities from the base model and the run adapter, and needs the admin token', async () => {
    const dir = tempDir('lethe-predict-');
    await using coordinator = new Coordinator({ dataDir: join(dir.path, 'data'), port: 0, log: () => undefined, backend: 'cpu' });
    await coordinator.start();
    const admin = new Admin(coordinator.address, coordinator.adminToken);
    const { runId } = await admin.createRun(runJson(await writeTestModel(dir.path), { labels: ['ham', 'spam', 'other'] }));
    admin.close();
    const inference = createClient(proto, 'inference', coordinator.address, credentials.createInsecure());
    try {
      const res = await callUnary(inference, 'Predict', { runId, text: 'win a free prize now' }, { metadata: adminMetadata(coordinator.adminToken) });
      expect(res.probabilities.map((p) => p.label)).toEqual(['ham', 'spam', 'other']);
      expect(res.probabilities.reduce((s, p) => s + p.probability, 0)).toBeCloseTo(1, 5);
      expect(res.predictedLabel).toBe(res.probabilities[res.predictedIndex]!.label);
      expect(res.numTokens).toBe(16); // truncated to seq_len
      expect(res.truncated).toBe(true);
      const tensorsBefore = tf.memory().numTensors;
      const short = await callUnary(inference, 'Predict', { runId, text: 'a' }, { metadata: adminMetadata(coordinator.adminToken) });
      expect(short.numTokens).toBe(1);
      expect(tf.memory().numTensors).toBe(tensorsBefore); // every per-call tensor disposed
      const refused = await callUnary(inference, 'Predict', { runId, text: 'x' }).catch((e: unknown) => e);
      expect((refused as RpcError).status).toBe(status.UNAUTHENTICATED);
    } finally {
      inference.close();
      dir.remove();
    }
  });
});
