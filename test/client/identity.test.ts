import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exportPublicKeyRaw, generateEd25519KeyPair } from '../../src/auth/keys.js';
import { IdentityError } from '../../src/client/errors.js';
import { identityPaths, loadIdentity, requireNoIdentity, saveIdentity, type ClientIdentity } from '../../src/client/identity.js';
import { tempDir } from './helpers.js';

function identity(): ClientIdentity {
  const keys = generateEd25519KeyPair();
  return {
    privateKey: keys.privateKey,
    record: {
      format: 1,
      clientId: 'c_0123456789abcdef',
      name: 'laptop',
      coordinator: '127.0.0.1:7070',
      coordinatorId: 'coord_1',
      publicKey: Buffer.from(exportPublicKeyRaw(keys.publicKey)).toString('hex'),
      enrolledAtMs: 1,
      memoryMb: 1024,
      modes: ['TRAINING_MODE_BACKPROP'],
    },
  };
}

describe('client identity', () => {
  const dir = tempDir('lethe-identity-');
  afterAll(() => dir.remove());

  it('identity – key and record are written with mode 0600 and load back', async () => {
    // Arrange
    const dataDir = join(dir.path, 'a');
    const id = identity();

    // Act
    await saveIdentity(dataDir, id);
    const loaded = await loadIdentity(dataDir);

    // Assert
    const paths = identityPaths(dataDir);
    expect(statSync(paths.key).mode & 0o777).toBe(0o600);
    expect(statSync(paths.identity).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o077).toBe(0);
    expect(loaded.record).toEqual(id.record);
    expect(Buffer.from(exportPublicKeyRaw(loaded.privateKey)).toString('hex')).toBe(id.record.publicKey);
  });

  it('identity – an empty data directory is "not enrolled" and names the enroll command', async () => {
    const err = await loadIdentity(join(dir.path, 'empty')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as IdentityError).code).toBe('not_enrolled');
    expect((err as Error).message).toMatch(/lethe client enroll/);
  });

  it('identity – a data directory that already holds an identity refuses a second enrollment', async () => {
    const dataDir = join(dir.path, 'b');
    await saveIdentity(dataDir, identity());
    const err = await requireNoIdentity(dataDir).catch((e: unknown) => e);
    expect((err as IdentityError).code).toBe('already_enrolled');
  });

  it('identity – a key that does not match the recorded public key is refused', async () => {
    // Arrange: the record of one key next to another key
    const dataDir = join(dir.path, 'c');
    const a = identity();
    await saveIdentity(dataDir, { ...a, privateKey: generateEd25519KeyPair().privateKey });

    // Act
    const err = await loadIdentity(dataDir).catch((e: unknown) => e);

    // Assert
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as Error).message).toMatch(/does not match/);
  });

  it('identity – a record readable by other users is refused (as ssh refuses such keys)', async () => {
    const dataDir = join(dir.path, 'd');
    await saveIdentity(dataDir, identity());
    chmodSync(identityPaths(dataDir).identity, 0o644);
    const err = await loadIdentity(dataDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as Error).message).toMatch(/chmod 600|accessible/);
  });
});
