import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  adminTokenMatches,
  adminTokenPath,
  loadOrCreateAdminToken,
  requireAdminToken,
} from '../../src/auth/admin-token.js';
import { BadAdminTokenError, KeyFileError } from '../../src/auth/errors.js';

describe('admin token', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lethe-admin-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('admin token – is created once with mode 0600 and then read back unchanged', async () => {
    const first = await loadOrCreateAdminToken(join(dir, 'data'));
    expect(first).toMatch(/^lethe_admin_[A-Za-z0-9_-]{43}$/);
    expect(statSync(adminTokenPath(join(dir, 'data'))).mode & 0o777).toBe(0o600);
    expect(await loadOrCreateAdminToken(join(dir, 'data'))).toBe(first);
    expect(readdirSync(join(dir, 'data'))).toEqual(['admin.token']);
  });

  it('admin token – concurrent first starts agree on one token', async () => {
    const tokens = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateAdminToken(dir)));
    expect(new Set(tokens).size).toBe(1);
  });

  it('admin token – refuses a token file others can read, or one without a token', async () => {
    writeFileSync(adminTokenPath(dir), 'lethe_admin_x\n', { mode: 0o600 });
    await expect(loadOrCreateAdminToken(dir)).rejects.toThrow(/does not hold a Lethe admin token/);
    writeFileSync(adminTokenPath(dir), 'x', { mode: 0o644 });
    await expect(loadOrCreateAdminToken(dir)).rejects.toBeInstanceOf(KeyFileError);
  });

  it('admin token – matches only the exact token', async () => {
    const token = await loadOrCreateAdminToken(dir);
    expect(adminTokenMatches(token, token)).toBe(true);
    expect(adminTokenMatches(token, `${token}x`)).toBe(false);
    expect(adminTokenMatches(token, token.slice(0, -1))).toBe(false);
    expect(adminTokenMatches(token, undefined)).toBe(false);
    expect(() => requireAdminToken(token, 'guess')).toThrow(BadAdminTokenError);
    expect(() => requireAdminToken(token, token)).not.toThrow();
  });
});
