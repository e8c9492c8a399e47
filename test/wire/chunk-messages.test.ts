/** Chunk-only streaming messages serialised by hand (src/wire/chunk-messages.ts) against protobufjs. */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { encodeTensors } from '../../src/wire/codec.js';
import { loadLetheProto } from '../../src/wire/proto.js';

const proto = loadLetheProto();
type Method = ServiceDefinition[string];
/** The definitions as proto-loader built them, serialised by protobufjs alone. */
const plain = proto.packageDefinition['lethe.v1.FleetService'] as unknown as Record<string, Method>;
const fleet = proto.services.fleet as unknown as Record<string, Method>;

/** Chunks of a 2.5 MiB + 24 byte payload: indexes 0..2, a full 1 MiB chunk and a short last one. */
const floats = Float32Array.from({ length: (5 << 18) + 6 }, (_, i) => Math.sin(i) * i);
const chunks = encodeTensors(new Map([['w', { shape: [floats.length], data: floats }]])).chunks;

describe('chunk messages', () => {
  it.each([0, 1, 2])('chunk-messages – a PushUpdateRequest holding only chunk %i is the bytes protobufjs writes, and decodes to it', (i) => {
    // Prepare
    const message = { chunk: chunks[i]! };
    // Execute
    const fast = fleet.PushUpdate!.requestSerialize(message);
    // Assert
    expect(fast.equals(plain.PushUpdate!.requestSerialize(message))).toBe(true);
    const decoded = fleet.PushUpdate!.requestDeserialize(fast) as { chunk: { index: number; data: Buffer; runningSha256: Buffer } };
    expect(decoded.chunk.index).toBe(i);
    expect(decoded.chunk.data.equals(chunks[i]!.data)).toBe(true);
    expect(decoded.chunk.runningSha256.equals(chunks[i]!.runningSha256)).toBe(true);
  });

  it('chunk-messages – a FetchAdapterResponse holding only a chunk is the bytes protobufjs writes', () => {
    const message = { chunk: chunks[1]!, manifest: null };
    expect(fleet.FetchAdapter!.responseSerialize(message).equals(plain.FetchAdapter!.responseSerialize(message))).toBe(true);
  });

  it('chunk-messages – a message with a header, or a chunk that is not plain bytes, still goes through protobufjs, and zero fields are left out as protobufjs does', () => {
    // Prepare
    const auth = { clientId: 'c', timestampMs: 5, nonce: Buffer.alloc(16, 1), signature: Buffer.alloc(64, 2) };
    const withHeader = { auth, body: Buffer.from('header'), chunk: chunks[0]! };
    const base64Chunk = { chunk: { index: 3, data: Buffer.from('abc').toString('base64'), runningSha256: Buffer.alloc(32, 9) } };
    const emptyChunk = { chunk: { index: 0, data: Buffer.alloc(0), runningSha256: Buffer.alloc(0) } };
    // Execute, Assert
    expect(fleet.PushUpdate!.requestSerialize(withHeader).equals(plain.PushUpdate!.requestSerialize(withHeader))).toBe(true);
    expect(fleet.PushUpdate!.requestSerialize(base64Chunk).equals(plain.PushUpdate!.requestSerialize(base64Chunk))).toBe(true);
    expect(fleet.PushUpdate!.requestSerialize(emptyChunk).equals(plain.PushUpdate!.requestSerialize(emptyChunk))).toBe(true);
    const first = { manifest: encodeTensors(new Map([['w', { shape: [2], data: new Float32Array([1, 2]) }]])).manifest, chunk: chunks[0]! };
    expect(fleet.FetchAdapter!.responseSerialize(first).equals(plain.FetchAdapter!.responseSerialize(first))).toBe(true);
  });
});
