/**
 * Ed25519 client keys (RFC 8032) with node:crypto. On the wire and in the store a public key is its raw 32 bytes;
 * a private key travels only to its own key file, as PKCS#8 PEM.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { InvalidKeyError } from './errors.js';

export const PUBLIC_KEY_BYTES = 32;

export interface Ed25519KeyPair {
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

export function generateEd25519KeyPair(): Ed25519KeyPair {
  return generateKeyPairSync('ed25519');
}

/** The raw 32-byte public key (the JWK `x` member). Accepts a public or a private key. */
export function exportPublicKeyRaw(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  requireEd25519(pub);
  const jwk = pub.export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(jwk.x as string, 'base64url'));
}

export function importPublicKeyRaw(raw: Uint8Array): KeyObject {
  if (!(raw instanceof Uint8Array) || raw.length !== PUBLIC_KEY_BYTES) {
    throw new InvalidKeyError(`an Ed25519 public key is ${PUBLIC_KEY_BYTES} raw bytes, got ${describe(raw)}`);
  }
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
  } catch (err) {
    throw new InvalidKeyError('bytes are not a valid Ed25519 public key', { cause: err });
  }
}

export function exportPrivateKeyPem(key: KeyObject): string {
  if (key.type !== 'private') throw new InvalidKeyError(`expected a private key, got a ${key.type} key`);
  requireEd25519(key);
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export function importPrivateKeyPem(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new InvalidKeyError('text is not a PEM private key (expected "-----BEGIN PRIVATE KEY-----")', { cause: err });
  }
  requireEd25519(key);
  return key;
}

/** A stable client id derived from the public key: "c_" + first 16 hex digits of SHA-256(raw key). */
export function clientIdFor(publicKeyRaw: Uint8Array): string {
  return `c_${createHash('sha256').update(publicKeyRaw).digest('hex').slice(0, 16)}`;
}

function requireEd25519(key: KeyObject): void {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new InvalidKeyError(`expected an Ed25519 key, got ${key.asymmetricKeyType ?? 'a symmetric key'}`);
  }
}

function describe(value: unknown): string {
  return value instanceof Uint8Array ? `${value.length} bytes` : typeof value;
}
