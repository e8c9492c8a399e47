/**
 * Client-side TLS for every channel to the coordinator: the CA that signed its certificate, plus this side's own
 * certificate and key when the coordinator requires mutual TLS (--tls-ca on its side). Paths, read when connecting,
 * so a renewed certificate is picked up by the next connection.
 */
import { readFileSync } from 'node:fs';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';

export interface TlsClientFiles {
  /** PEM of the CA that signed the coordinator's certificate. */
  readonly ca: string;
  /** PEM certificate and private key presented for mutual TLS; both or neither. */
  readonly cert?: string;
  readonly key?: string;
}

export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

/** --tls-ca / --tls-cert / --tls-key → files (undefined: plaintext); cert and key come together and need a CA. */
export function tlsClientFiles(ca: string | undefined, cert: string | undefined, key: string | undefined): TlsClientFiles | undefined {
  if ((cert === undefined) !== (key === undefined)) throw new TlsConfigError('mutual TLS needs both --tls-cert and --tls-key');
  if (ca === undefined) {
    if (cert !== undefined) throw new TlsConfigError('--tls-cert/--tls-key need --tls-ca (the CA that signed the coordinator certificate)');
    return undefined;
  }
  return { ca, ...(cert !== undefined && key !== undefined ? { cert, key } : {}) };
}

/** Channel credentials for `files`: TLS (mutual when a cert is given), or plaintext when undefined. */
export function channelCredentials(files: TlsClientFiles | undefined): ChannelCredentials {
  if (!files) return credentials.createInsecure();
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new TlsConfigError(`cannot read the TLS ${what} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  return credentials.createSsl(
    read(files.ca, 'CA'),
    files.key !== undefined ? read(files.key, 'key') : null,
    files.cert !== undefined ? read(files.cert, 'certificate') : null,
  );
}
