/**
 * A client's identity in its data directory: the Ed25519 private key (`client.key`, PKCS#8 PEM) and what enrollment
 * returned (`identity.json`: client id, coordinator address, names). Both files are mode 0600 and written atomically
 * (src/auth/key-file.ts), so a crash during enrollment never leaves half a key, and the key is never readable by
 * other users even for an instant.
 */
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { readPrivateKeyFile, readSecretFile, writePrivateKeyFile, writeSecretFile } from '../auth/key-file.js';
import { exportPublicKeyRaw } from '../auth/keys.js';
import type { TrainingMode } from '../wire/messages.js';
import type { TlsClientFiles } from '../wire/tls.js';
import { IdentityError } from './errors.js';

export const KEY_FILE = 'client.key';
export const IDENTITY_FILE = 'identity.json';

/** What identity.json records. */
export interface IdentityRecord {
  readonly format: 1;
  /** RequestAuth.client_id, as EnrollResponse returned it. */
  readonly clientId: string;
  readonly name: string;
  /** host:port the client enrolled with; `client run` connects there unless told otherwise. */
  readonly coordinator: string;
  readonly coordinatorId: string;
  /** Hex of the raw 32-byte public key (the private key is in client.key). */
  readonly publicKey: string;
  readonly enrolledAtMs: number;
  /** Declared at enrollment and re-sent by `client run` (with the backend and data size it finds). */
  readonly memoryMb: number;
  readonly modes: readonly TrainingMode[];
  /** TLS files (absolute paths) when the coordinator uses TLS: its CA, and this client's cert + key for mutual TLS. */
  readonly tls?: TlsClientFiles;
}

export interface ClientIdentity {
  readonly record: IdentityRecord;
  readonly privateKey: KeyObject;
}

export function identityPaths(dataDir: string): { key: string; identity: string } {
  return { key: join(dataDir, KEY_FILE), identity: join(dataDir, IDENTITY_FILE) };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Throws IdentityError('already_enrolled') when `dataDir` already holds an identity: one key per data directory. */
export async function requireNoIdentity(dataDir: string): Promise<void> {
  const paths = identityPaths(dataDir);
  if ((await exists(paths.identity)) || (await exists(paths.key))) {
    throw new IdentityError(
      `${dataDir} already holds a client identity (${IDENTITY_FILE}); run 'lethe client run --data-dir ${dataDir}', ` +
        'or enroll into a new --data-dir',
      'already_enrolled',
    );
  }
}

/** Writes the key, then the record (a record without its key would be an identity that cannot sign). */
export async function saveIdentity(dataDir: string, identity: ClientIdentity): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const paths = identityPaths(dataDir);
  await writePrivateKeyFile(paths.key, identity.privateKey);
  await writeSecretFile(paths.identity, `${JSON.stringify(identity.record, null, 2)}\n`);
}

/** Loads and cross-checks the identity; IdentityError('not_enrolled') when there is none. */
export async function loadIdentity(dataDir: string): Promise<ClientIdentity> {
  const paths = identityPaths(dataDir);
  if (!(await exists(paths.identity))) {
    throw new IdentityError(`${dataDir} holds no client identity; run 'lethe client enroll --data-dir ${dataDir} ...' first`, 'not_enrolled');
  }
  let record: IdentityRecord;
  try {
    record = JSON.parse(await readSecretFile(paths.identity)) as IdentityRecord;
  } catch (err) {
    throw new IdentityError(`cannot read ${paths.identity}: ${(err as Error).message}`, 'identity', { cause: err });
  }
  if (record.format !== 1 || typeof record.clientId !== 'string' || record.clientId === '' || typeof record.coordinator !== 'string') {
    throw new IdentityError(`${paths.identity} is not a Lethe client identity (format 1 with clientId and coordinator)`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = await readPrivateKeyFile(paths.key);
  } catch (err) {
    throw new IdentityError(`cannot load the client key: ${(err as Error).message}`, 'identity', { cause: err });
  }
  if (Buffer.from(exportPublicKeyRaw(privateKey)).toString('hex') !== record.publicKey) {
    throw new IdentityError(`${paths.key} does not match the public key recorded in ${paths.identity}; the data directory is inconsistent`);
  }
  return { record, privateKey };
}
