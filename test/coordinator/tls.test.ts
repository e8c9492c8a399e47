/**
 * TLS and mutual TLS on real sockets: the coordinator serves with the fixture certificate (test/fixtures/tls,
 * make.sh regenerates it); clients and operators connect with the CA, and with their own certificate when the
 * coordinator requires one.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadIdentity } from '../../src/client/identity.js';
import { enroll } from '../../src/client/enroll.js';
import { connectAdmin } from '../../src/coordinator/admin-client.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { callUnary } from '../../src/wire/services.js';
import { channelCredentials, tlsClientFiles, TlsConfigError, type TlsClientFiles } from '../../src/wire/tls.js';
import { proto, runJson, tempDir, writeTestModel } from './helpers.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'tls');
const fixture = (name: string): string => join(FIXTURES, name);
const SERVER = { cert: readFileSync(fixture('server.pem')), key: readFileSync(fixture('server.key')) };
const CA_ONLY: TlsClientFiles = { ca: fixture('ca.pem') };
const CLIENT_CERT: TlsClientFiles = { ca: fixture('ca.pem'), cert: fixture('client.pem'), key: fixture('client.key') };
const ROGUE_CERT: TlsClientFiles = { ca: fixture('ca.pem'), cert: fixture('rogue-client.pem'), key: fixture('rogue-client.key') };

async function startCoordinator(dataDir: string, requireClientCert: boolean): Promise<Coordinator> {
  const tls = requireClientCert ? { ...SERVER, ca: readFileSync(fixture('ca.pem')) } : SERVER;
  const coordinator = new Coordinator({ dataDir, port: 0, host: '127.0.0.1', tls, log: () => undefined });
  await coordinator.start();
  return coordinator;
}

/** Mints a join token over TLS as the operator and enrolls a client with `files`; resolves to the client id. */
async function enrollWith(coordinator: Coordinator, dataDir: string, files: TlsClientFiles | undefined, adminFiles: TlsClientFiles): Promise<string> {
  const admin = await connectAdmin({ coordinator: coordinator.address, adminToken: coordinator.adminToken, tls: adminFiles });
  try {
    const { token } = await callUnary(admin.client, 'CreateJoinToken', { ttlSeconds: 600, uses: 1 }, admin.settings());
    const identity = await enroll({
      proto,
      address: coordinator.address,
      credentials: channelCredentials(files),
      joinToken: token,
      name: 'tls-client',
      dataDir,
      memoryMb: 512,
      modes: ['TRAINING_MODE_BACKPROP'],
      backend: 'cpu',
      ...(files ? { tls: files } : {}),
    });
    return identity.record.clientId;
  } finally {
    admin.close();
  }
}

describe('coordinator over TLS', () => {
  const dir = tempDir('lethe-tls-');
  let coordinator: Coordinator;

  beforeAll(async () => {
    coordinator = await startCoordinator(join(dir.path, 'tls'), false);
  });
  afterAll(async () => {
    await coordinator.close();
    dir.remove();
  });

  it('enrolls a client that trusts the CA and records the TLS files for later runs', async () => {
    const dataDir = join(dir.path, 'client-a');
    const id = await enrollWith(coordinator, dataDir, CA_ONLY, CA_ONLY);
    expect(id).toMatch(/\S/);
    expect((await loadIdentity(dataDir)).record.tls).toEqual(CA_ONLY);
  });

  it('refuses a plaintext client: the connection never reaches a handler', async () => {
    await expect(enrollWith(coordinator, join(dir.path, 'client-b'), undefined, CA_ONLY)).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('refuses a client that does not trust the coordinator certificate', async () => {
    const wrongCa = { ca: fixture('rogue-ca.pem') };
    await expect(enrollWith(coordinator, join(dir.path, 'client-c'), wrongCa, CA_ONLY)).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('creates the --config run in process once, whatever TLS the server requires', async () => {
    const config = runJson(await writeTestModel(dir.path), { name: 'tls-config' });
    const first = await coordinator.ensureRun(config);
    const again = await coordinator.ensureRun(config);
    expect(first.created).toBe(true);
    expect(again).toEqual({ runId: first.runId, created: false });
  });
});

describe('coordinator over mutual TLS', () => {
  const dir = tempDir('lethe-mtls-');
  let coordinator: Coordinator;

  beforeAll(async () => {
    coordinator = await startCoordinator(join(dir.path, 'mtls'), true);
  });
  afterAll(async () => {
    await coordinator.close();
    dir.remove();
  });

  it('enrolls a client presenting a certificate from the trusted CA', async () => {
    const dataDir = join(dir.path, 'client-a');
    await enrollWith(coordinator, dataDir, CLIENT_CERT, CLIENT_CERT);
    expect((await loadIdentity(dataDir)).record.tls).toEqual(CLIENT_CERT);
  });

  it('refuses a client without a certificate', async () => {
    await expect(enrollWith(coordinator, join(dir.path, 'client-b'), CA_ONLY, CLIENT_CERT)).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('refuses a client whose certificate another CA signed', async () => {
    await expect(enrollWith(coordinator, join(dir.path, 'client-c'), ROGUE_CERT, CLIENT_CERT)).rejects.toMatchObject({ code: 'unavailable' });
  });
});

describe('TLS client flags', () => {
  it('needs a certificate and its key together, and a CA for either', () => {
    expect(tlsClientFiles(undefined, undefined, undefined)).toBeUndefined();
    expect(tlsClientFiles('ca.pem', 'c.pem', 'c.key')).toEqual({ ca: 'ca.pem', cert: 'c.pem', key: 'c.key' });
    expect(() => tlsClientFiles('ca.pem', 'c.pem', undefined)).toThrow(TlsConfigError);
    expect(() => tlsClientFiles(undefined, 'c.pem', 'c.key')).toThrow(/--tls-ca/);
  });

  it('names the file it cannot read', () => {
    expect(() => channelCredentials({ ca: '/nonexistent/ca.pem' })).toThrow(/\/nonexistent\/ca\.pem/);
  });
});
