/**
 * The operator's bearer credential: a random token created at the coordinator's first start in
 * <data-dir>/admin.token (mode 0600) and presented by admin calls and the CLI. Creation is create-if-absent and
 * atomic (written to a temp file, then hard-linked into place), so two coordinators starting at once agree on one
 * token and a crash never leaves an empty file behind.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, link, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BadAdminTokenError, KeyFileError } from './errors.js';
import { readSecretFile, writeSecretFile } from './key-file.js';

export const ADMIN_TOKEN_FILE = 'admin.token';
export const ADMIN_TOKEN_PREFIX = 'lethe_admin_';
const TOKEN_PATTERN = /^lethe_admin_[A-Za-z0-9_-]{43}$/;

export function adminTokenPath(dataDir: string): string {
  return join(dataDir, ADMIN_TOKEN_FILE);
}

/** Returns the data directory's admin token, creating it (mode 0600) on first use. */
export async function loadOrCreateAdminToken(dataDir: string): Promise<string> {
  const path = adminTokenPath(dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const fresh = ADMIN_TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const tmp = `${path}.new-${randomBytes(6).toString('hex')}`;
  await writeSecretFile(tmp, `${fresh}\n`);
  try {
    await link(tmp, path);
    return fresh;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new KeyFileError(`cannot create ${path}: ${(err as Error).message}`, { cause: err });
    }
    return await readAdminToken(dataDir); // awaited so the rejection is handled before `finally` runs
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Reads an existing admin token; KeyFileError when it is missing, malformed or readable by others. */
export async function readAdminToken(dataDir: string): Promise<string> {
  const path = adminTokenPath(dataDir);
  const token = (await readSecretFile(path)).trim();
  if (!TOKEN_PATTERN.test(token)) throw new KeyFileError(`${path} does not hold a Lethe admin token; delete it to create a new one`);
  return token;
}

/**
 * Constant-time comparison. Both sides are hashed first so that timingSafeEqual sees equal lengths and the time
 * reveals nothing about the expected token's length either.
 */
export function adminTokenMatches(expected: string, presented: string | undefined): boolean {
  if (typeof presented !== 'string') return false;
  const a = createHash('sha256').update(expected, 'utf8').digest();
  const b = createHash('sha256').update(presented, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** Throws BadAdminTokenError unless `presented` is the admin token. */
export function requireAdminToken(expected: string, presented: string | undefined): void {
  if (!adminTokenMatches(expected, presented)) throw new BadAdminTokenError();
}
