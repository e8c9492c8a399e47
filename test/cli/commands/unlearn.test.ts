/** `lethe unlearn submit|status|list` against a live in-process coordinator. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../../../src/cli/command.js';
import { unlearnListCommand, unlearnStatusCommand, unlearnSubmitCommand } from '../../../src/cli/commands/unlearn.js';
import { credentials } from '@grpc/grpc-js';
import { enroll } from '../../../src/client/enroll.js';
import { Coordinator } from '../../../src/coordinator/coordinator.js';
import { RpcError } from '../../../src/wire/errors.js';
import { Admin, proto, runJson, tempDir, TestClient, writeTestModel } from '../../coordinator/helpers.js';

async function captured(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
    out += String(c);
    return true;
  });
  try {
    return { code: await fn(), out };
  } finally {
    spy.mockRestore();
  }
}

describe('lethe unlearn', () => {
  const dir = tempDir('lethe-cli-unl-');
  const dataDir = join(dir.path, 'data');
  let coordinator: Coordinator;
  let runId: string;
  let clientId: string;

  beforeAll(async () => {
    coordinator = new Coordinator({ dataDir, port: 0, log: () => undefined });
    await coordinator.start();
    const admin = new Admin(coordinator.address, coordinator.adminToken);
    ({ runId } = await admin.createRun(runJson(await writeTestModel(dir.path), { min_clients: 5 })));
    const client = new TestClient(coordinator.address);
    clientId = await client.enroll(await admin.joinToken());
    client.close();
    admin.close();
  });
  afterAll(async () => {
    await coordinator.close();
    dir.remove();
  });

  it('unlearn – submit prints the queued request; status and list --json show it', async () => {
    // Arrange
    const target = ['--coordinator', coordinator.address, '--data-dir', dataDir];

    // Act
    const submit = await captured(() => unlearnSubmitCommand.run([...target, '--run', runId, '--client', clientId, '--group', 'spam-2', '--reason', 'user asked', '--json']));
    const { requestId } = JSON.parse(submit.out) as { requestId: string };
    const status = await captured(() => unlearnStatusCommand.run([...target, requestId]));
    const list = await captured(() => unlearnListCommand.run([...target, '--json']));

    // Assert
    expect(submit.code).toBe(0);
    expect(status.out).toMatch(new RegExp(`${requestId}  run ${runId}  #1  queued`));
    expect(status.out).toMatch(/forget group=spam-2 on .* \(input_hash_label\): user asked/);
    expect((JSON.parse(list.out) as { requestId: string }[]).map((r) => r.requestId)).toEqual([requestId]);
  });

  it('unlearn – submit without a selector or a reason is a usage error naming the flag', async () => {
    const base = ['--data-dir', dataDir, '--run', runId, '--client', clientId];
    await expect(unlearnSubmitCommand.run([...base, '--reason', 'r'])).rejects.toThrow(new UsageError('say what to forget: --label L, --group G or --match REGEX'));
    await expect(unlearnSubmitCommand.run([...base, '--label', 'spam'])).rejects.toThrow(/--reason is required/);
  });

  it('unlearn – submit --as-client signs with the key in the client data dir; once revoked, it is refused with revoked_client', async () => {
    // Arrange
    const admin = new Admin(coordinator.address, coordinator.adminToken);
    const clientDir = join(dir.path, 'client');
    const identity = await enroll({
      proto,
      address: coordinator.address,
      credentials: credentials.createInsecure(),
      joinToken: await admin.joinToken(),
      name: 'owner',
      dataDir: clientDir,
      memoryMb: 1024,
      modes: ['TRAINING_MODE_BACKPROP'],
      backend: 'cpu',
    });
    const args = ['--as-client', '--data-dir', clientDir, '--run', runId, '--match', 'unsubscribe', '--reason', 'mine', '--json'];

    try {
      // Act
      const submit = await captured(() => unlearnSubmitCommand.run(args));
      await admin.call('RevokeClient', { clientId: identity.record.clientId, reason: 'left' });
      const refused = await unlearnSubmitCommand.run([...args.slice(0, -3), '--label', 'spam', '--reason', 'again']).catch((e: unknown) => e);

      // Assert
      expect(JSON.parse(submit.out)).toMatchObject({ runId, clientIds: [identity.record.clientId], state: 'UNLEARNING_STATE_PENDING' });
      expect(refused).toBeInstanceOf(RpcError);
      expect(refused).toMatchObject({ code: 'revoked_client', message: expect.stringMatching(/PERMISSION_DENIED.*revoked/) });
    } finally {
      admin.close();
    }
  });

  it('unlearn – submit --as-client with --client is a usage error', async () => {
    await expect(unlearnSubmitCommand.run(['--as-client', '--run', runId, '--client', clientId, '--label', 'spam', '--reason', 'r'])).rejects.toThrow(/drop --client/);
  });
});
