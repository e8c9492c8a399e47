/**
 * The client's private key on disk: PKCS#8 PEM, mode 0600. Written to a temporary file in the same directory and
 * renamed into place, so a crash never leaves a half-written key and the file is never readable by others, even
 * for an instant. Reading refuses a key file that group or others can access (as ssh does).
 */
import { chmod, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { randomBytes, type KeyObject } from 'node:crypto';
import { KeyFileError } from './errors.js';
import { exportPrivateKeyPem, importPrivateKeyPem } from './keys.js';

const PRIVATE_MODE = 0o600;

/** Writes `privateKey` to `path` (replacing any old file) with mode 0600. */
export async function writePrivateKeyFile(path: string, privateKey: KeyObject): Promise<void> {
  await writeSecretFile(path, exportPrivateKeyPem(privateKey));
}

export async function readPrivateKeyFile(path: string): Promise<KeyObject> {
  return importPrivateKeyPem(await readSecretFile(path));
}

/** Atomic replace of a 0600 file: temp file created 0600 and fsync'd, chmod (a umask may have removed owner bits too), rename. */
export async function writeSecretFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(tmp, 'wx', PRIVATE_MODE);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(tmp, PRIVATE_MODE);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new KeyFileError(`cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads a secret file, refusing one that group or others may read or write. */
export async function readSecretFile(path: string): Promise<string> {
  try {
    const info = await stat(path);
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new KeyFileError(
        `${path} is accessible by other users (mode ${(info.mode & 0o777).toString(8)}); run chmod 600 ${path}`,
      );
    }
    return await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof KeyFileError) throw err;
    throw new KeyFileError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}
