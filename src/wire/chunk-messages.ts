/**
 * Serialising the streaming calls' chunk-only messages (fleet.proto: a PushUpdateRequest or FetchAdapterResponse
 * carrying nothing but a TensorChunk) by hand: one buffer of the exact size and one copy of the chunk's bytes.
 * protobufjs 8 writes a nested 1 MiB bytes field into a buffer it grows by doubling, moves the nested message to make
 * room for its length prefix, and copies the result out once more: three large allocations and three copies per
 * chunk, most of what a client spends sending an update, and garbage the collector then chases. The bytes are the
 * same protobuf encoding (fields in number order, as protobufjs writes them); other messages go to protobufjs.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';

/** Wire type 2 (length-delimited) tag of a field. */
const lengthDelimited = (field: number): number => (field << 3) | 2;
/** TensorChunk (tensor.proto): index = 1 (varint), data = 2, running_sha256 = 3. */
const INDEX_TAG = 1 << 3;
const DATA_TAG = lengthDelimited(2);
const DIGEST_TAG = lengthDelimited(3);

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/** The TensorChunk fields a hand-written message needs; anything else (a base64 string, say) takes protobufjs. */
interface PlainChunk {
  readonly index: number;
  readonly data: Uint8Array;
  readonly runningSha256: Uint8Array;
}

function isPlainChunk(chunk: unknown): chunk is PlainChunk {
  const c = chunk as Partial<PlainChunk> | null | undefined;
  return typeof c === 'object' && c !== null && Number.isSafeInteger(c.index) && c.index! >= 0 && c.index! <= 0xffffffff && c.data instanceof Uint8Array && c.runningSha256 instanceof Uint8Array;
}

/** A message whose only field is the TensorChunk `chunk` at field number `field`: the bytes protobufjs writes for it. */
export function encodeChunkOnly(field: number, chunk: PlainChunk): Buffer {
  const { index, data, runningSha256 } = chunk;
  const inner =
    (index === 0 ? 0 : 1 + varintSize(index)) +
    (data.length === 0 ? 0 : 1 + varintSize(data.length) + data.length) +
    (runningSha256.length === 0 ? 0 : 1 + varintSize(runningSha256.length) + runningSha256.length);
  const out = Buffer.allocUnsafe(1 + varintSize(inner) + inner);
  let at = writeVarint(out, writeVarint(out, 0, lengthDelimited(field)), inner);
  if (index !== 0) at = writeVarint(out, writeVarint(out, at, INDEX_TAG), index);
  for (const [tag, bytes] of [[DATA_TAG, data], [DIGEST_TAG, runningSha256]] as const) {
    if (bytes.length === 0) continue; // proto3 leaves zero and empty fields out
    at = writeVarint(out, writeVarint(out, at, tag), bytes.length);
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
}

type Serialize = (value: unknown) => Buffer;

/** `serialize` with chunk-only messages (every field but `chunk` absent or empty) written by encodeChunkOnly. */
function chunkFastPath(serialize: Serialize, field: number, otherFields: readonly string[]): Serialize {
  return (value) => {
    const m = value as Record<string, unknown>;
    const onlyChunk = otherFields.every((k) => m[k] === undefined || m[k] === null || (m[k] instanceof Uint8Array && m[k].length === 0));
    return onlyChunk && isPlainChunk(m.chunk) ? encodeChunkOnly(field, m.chunk) : serialize(value);
  };
}

/** The FleetService definition with the chunk fast path on PushUpdate's requests and FetchAdapter's responses. */
export function withChunkSerializers(fleet: ServiceDefinition): ServiceDefinition {
  const push = fleet['PushUpdate']!;
  const fetch = fleet['FetchAdapter']!;
  return {
    ...fleet,
    PushUpdate: { ...push, requestSerialize: chunkFastPath(push.requestSerialize as Serialize, 3, ['auth', 'body']) },
    FetchAdapter: { ...fetch, responseSerialize: chunkFastPath(fetch.responseSerialize as Serialize, 2, ['manifest']) },
  };
}
