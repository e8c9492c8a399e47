import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MalformedRequestError } from '../../src/auth/errors.js';
import { exportPublicKeyRaw, generateEd25519KeyPair, importPublicKeyRaw } from '../../src/auth/keys.js';
import { signingMessage, signRequest, verifyRequest, type SignedRequestFields } from '../../src/auth/signing.js';

const keys = generateEd25519KeyPair();
const fields: SignedRequestFields = {
  method: '/lethe.v1.FleetService/PullTask',
  clientId: 'c_0123456789abcdef',
  timestampMs: 1_700_000_000_123,
  nonce: new Uint8Array(16).map((_, i) => i),
  payload: new TextEncoder().encode('{"round":3}'),
};

describe('request signing', () => {
  it('signing – the signed message is exactly the documented lines', () => {
    const payloadHash = createHash('sha256').update('{"round":3}').digest('hex');
    expect(signingMessage(fields).toString('utf8')).toBe(
      `lethe.v1\n/lethe.v1.FleetService/PullTask\nc_0123456789abcdef\n1700000000123\n000102030405060708090a0b0c0d0e0f\n${payloadHash}`,
    );
  });

  it('signing – a signature verifies under the raw public key that was exported and imported', () => {
    const signature = signRequest(keys.privateKey, fields);
    expect(signature).toHaveLength(64);
    expect(verifyRequest(importPublicKeyRaw(exportPublicKeyRaw(keys.publicKey)), fields, signature)).toBe(true);
  });

  it('signing – an Enroll request is signed with an empty client id', () => {
    const enroll = { ...fields, method: '/lethe.v1.EnrollmentService/Enroll', clientId: '' };
    expect(signingMessage(enroll).toString('utf8').split('\n')[2]).toBe('');
    expect(verifyRequest(keys.publicKey, enroll, signRequest(keys.privateKey, enroll))).toBe(true);
  });

  it('signing – changing any signed field, or the signature, makes verification fail', () => {
    const signature = signRequest(keys.privateKey, fields);
    const flipped = new Uint8Array(fields.nonce);
    flipped[0] = flipped[0]! ^ 1;
    const tampered: Record<string, SignedRequestFields> = {
      method: { ...fields, method: '/lethe.v1.FleetService/PushUpdate' },
      clientId: { ...fields, clientId: 'c_ffffffffffffffff' },
      timestampMs: { ...fields, timestampMs: fields.timestampMs + 1 },
      nonce: { ...fields, nonce: flipped },
      payload: { ...fields, payload: new TextEncoder().encode('{"round":4}') },
    };
    for (const [field, request] of Object.entries(tampered)) {
      expect(verifyRequest(keys.publicKey, request, signature), field).toBe(false);
    }
    const badSignature = new Uint8Array(signature);
    badSignature[10] = badSignature[10]! ^ 0x80;
    expect(verifyRequest(keys.publicKey, fields, badSignature)).toBe(false);
    expect(verifyRequest(keys.publicKey, fields, signature.subarray(0, 63))).toBe(false);
    expect(verifyRequest(generateEd25519KeyPair().publicKey, fields, signature)).toBe(false);
  });

  it('signing – refuses fields that could make the message ambiguous', () => {
    expect(() => signRequest(keys.privateKey, { ...fields, clientId: 'a\nb' })).toThrow(MalformedRequestError);
    expect(() => signRequest(keys.privateKey, { ...fields, method: 'PullTask' })).toThrow(/full gRPC method name/);
    expect(() => signRequest(keys.privateKey, { ...fields, nonce: new Uint8Array(8) })).toThrow(/nonce must be 16-64/);
    expect(() => signRequest(keys.privateKey, { ...fields, timestampMs: 1.5 })).toThrow(/timestamp/);
    const signature = signRequest(keys.privateKey, fields);
    expect(verifyRequest(keys.publicKey, { ...fields, clientId: 'c_0123456789abcdef\n' }, signature)).toBe(false);
  });
});
