/**
 * The operator's side of AdminService, for the CLI: where the coordinator is, which credential to present (the
 * token in <data-dir>/admin.token, or one given explicitly), and TLS when the coordinator uses it.
 */
import { Metadata } from '@grpc/grpc-js';
import { readAdminToken } from '../auth/admin-token.js';
import { loadLetheProto } from '../wire/proto.js';
import { createClient, type AdminClient, type CallSettings } from '../wire/services.js';
import { channelCredentials, tlsClientFiles, type TlsClientFiles } from '../wire/tls.js';
import { InvalidRequestError } from './errors.js';

export interface AdminTarget {
  /** host:port; default 127.0.0.1:7070. */
  readonly coordinator?: string;
  /** Data directory of the coordinator, to read admin.token from. */
  readonly dataDir?: string;
  /** The admin token itself (takes precedence over dataDir). */
  readonly adminToken?: string;
  /** TLS when the coordinator uses it (mutual TLS with a cert and key). */
  readonly tls?: TlsClientFiles;
}

export interface AdminConnection {
  readonly client: AdminClient;
  /** Carries "authorization: Bearer <token>". */
  readonly metadata: Metadata;
  /** Call settings for callUnary: the credential and a 30 s deadline. */
  settings(): CallSettings;
  close(): void;
}

export async function connectAdmin(target: AdminTarget): Promise<AdminConnection> {
  let token = target.adminToken;
  if (token === undefined) {
    if (target.dataDir === undefined) throw new InvalidRequestError('give --data-dir (to read admin.token) or --admin-token');
    token = await readAdminToken(target.dataDir);
  }
  const client = createClient(loadLetheProto(), 'admin', target.coordinator ?? '127.0.0.1:7070', channelCredentials(target.tls));
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return { client, metadata, settings: () => ({ metadata, deadline: Date.now() + 30_000 }), close: () => client.close() };
}

/** node:util parseArgs options shared by the admin commands. */
export const ADMIN_FLAG_OPTIONS = {
  coordinator: { type: 'string' },
  'data-dir': { type: 'string' },
  'admin-token': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
} as const;

/** Usage text of ADMIN_FLAG_OPTIONS. */
export const ADMIN_FLAG_USAGE = '[--coordinator HOST:PORT] (--data-dir DIR | --admin-token TOKEN) [--tls-ca PEM [--tls-cert PEM --tls-key PEM]]';

export function adminTarget(values: Readonly<Record<string, unknown>>): AdminTarget {
  const s = (k: string): string | undefined => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  return {
    coordinator: s('coordinator'),
    dataDir: s('data-dir'),
    adminToken: s('admin-token') ?? process.env.LETHE_ADMIN_TOKEN,
    tls: tlsClientFiles(s('tls-ca'), s('tls-cert'), s('tls-key')),
  };
}
