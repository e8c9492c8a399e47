import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidKeyError } from '../../src/auth/errors.js';
import {
  clientIdFor,
  exportPrivateKeyPem,
  exportPublicKeyRaw,
  generateEd25519KeyPair,
  importPrivateKeyPem,
  importPublicKeyRaw,
} from '../../src/auth/keys.js';

describe('keys', () => {
  it('keys – a public key exports to 32 raw bytes and imports back to the same key', () => {
    const { publicKey, privateKey } = generateEd25519KeyPair();
    const raw = exportPublicKeyRaw(publicKey);
    expect(raw).toHaveLength(32);
    expect(exportPublicKeyRaw(privateKey)).toEqual(raw);
    expect(importPublicKeyRaw(raw).equals(publicKey)).toBe(true);
  });

  it('keys – a private key round-trips through PKCS#8 PEM', () => {
    const { privateKey } = generateEd25519KeyPair();
    const pem = exportPrivateKeyPem(privateKey);
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(importPrivateKeyPem(pem).equals(privateKey)).toBe(true);
  });

  it('keys – refuses keys that are not Ed25519 or not the right size', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => importPrivateKeyPem(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)).toThrow(InvalidKeyError);
    expect(() => importPrivateKeyPem('not a key')).toThrow(InvalidKeyError);
    expect(() => importPublicKeyRaw(new Uint8Array(31))).toThrow(/32 raw bytes/);
    expect(() => exportPrivateKeyPem(generateEd25519KeyPair().publicKey)).toThrow(InvalidKeyError);
  });

  it('keys – client ids are derived from the public key, stably', () => {
    const raw = exportPublicKeyRaw(generateEd25519KeyPair().publicKey);
    expect(clientIdFor(raw)).toMatch(/^c_[0-9a-f]{16}$/);
    expect(clientIdFor(new Uint8Array(raw))).toBe(clientIdFor(raw));
    expect(clientIdFor(exportPublicKeyRaw(generateEd25519KeyPair().publicKey))).not.toBe(clientIdFor(raw));
  });
});
