import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeyFileError } from '../../src/auth/errors.js';
import { generateEd25519KeyPair } from '../../src/auth/keys.js';
import { readPrivateKeyFile, writePrivateKeyFile } from '../../src/auth/key-file.js';

describe('key file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lethe-key-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('key file – writes the private key with mode 0600 and reads it back', async () => {
    const { privateKey } = generateEd25519KeyPair();
    const path = join(dir, 'client.key');
    await writePrivateKeyFile(path, privateKey);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect((await readPrivateKeyFile(path)).equals(privateKey)).toBe(true);
  });

  it('key file – replacing a world-readable file leaves a 0600 file', async () => {
    const path = join(dir, 'client.key');
    writeFileSync(path, 'old', { mode: 0o644 });
    await writePrivateKeyFile(path, generateEd25519KeyPair().privateKey);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('key file – refuses to read a key other users can read', async () => {
    const path = join(dir, 'client.key');
    await writePrivateKeyFile(path, generateEd25519KeyPair().privateKey);
    chmodSync(path, 0o640);
    await expect(readPrivateKeyFile(path)).rejects.toThrow(/chmod 600/);
    await expect(readPrivateKeyFile(join(dir, 'missing.key'))).rejects.toBeInstanceOf(KeyFileError);
  });
});
