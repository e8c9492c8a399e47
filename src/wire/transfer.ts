/**
 * Moving encoded tensors through the streaming calls (fleet.proto): building the message sequences of PushUpdate
 * and FetchAdapter from a codec result, writing them with backpressure, and assembling them on the receiving side.
 */
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { bytesOf, TensorAssembler, type AssemblyLimits, type EncodedTensors, type WireChunk } from './codec.js';
import { ProtocolError } from './errors.js';
import type { FetchAdapterResponse, MessageInput, PushUpdateRequest, RequestAuth, TensorChunk, TensorManifest } from './messages.js';
import type { HostTensor, TensorMap } from '../tensors/host.js';

/**
 * The PushUpdate messages for one upload: the first carries auth, the serialized UpdateHeader (whose manifest must be
 * `encoded.manifest`) and the first chunk, so a payload of one chunk (a 4096-scalar seed upload) is a single message.
 */
export function pushUpdateMessages(auth: MessageInput<RequestAuth>, body: Uint8Array, encoded: EncodedTensors): MessageInput<PushUpdateRequest>[] {
  const [first, ...rest] = encoded.chunks;
  return [{ auth, body, chunk: first ?? null }, ...rest.map((chunk) => ({ chunk }))];
}

/** The FetchAdapter response messages: the manifest with the first chunk, then one message per chunk. */
export function fetchAdapterMessages(encoded: EncodedTensors): MessageInput<FetchAdapterResponse>[] {
  const [first, ...rest] = encoded.chunks;
  return [{ manifest: encoded.manifest, chunk: first ?? null }, ...rest.map((chunk) => ({ chunk }))];
}

/** Writes every message, waiting for 'drain' whenever the stream's buffer is full, then ends the stream. */
export async function writeAll<T>(stream: Writable, messages: Iterable<T>): Promise<void> {
  for (const m of messages) {
    if (!stream.write(m)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          stream.off('error', onError);
          resolve();
        };
        const onError = (err: Error): void => {
          stream.off('drain', onDrain);
          reject(err);
        };
        stream.once('drain', onDrain);
        stream.once('error', onError);
      });
    }
  }
  stream.end();
}

/** A message that may carry a chunk, and must not carry a header after the first message. */
interface ChunkMessage {
  readonly chunk: TensorChunk | null;
  readonly auth?: unknown;
  readonly body?: Uint8Array;
  readonly manifest?: TensorManifest | null;
}

/**
 * Feeds the chunks of `rest` (the messages after the first) to the assembler, after `firstChunk` (the first
 * message's chunk, if any), and returns the verified tensors. A later message repeating a header part fails with
 * ProtocolError('unexpected_header'); codec errors propagate as thrown by the assembler.
 */
export async function receivePayload(
  assembler: TensorAssembler,
  firstChunk: WireChunk | null,
  rest: AsyncIterable<ChunkMessage>,
): Promise<Map<string, HostTensor>> {
  if (firstChunk) assembler.push(firstChunk);
  for await (const m of rest) {
    if ((m.auth !== undefined && m.auth !== null) || (m.body !== undefined && m.body.length > 0) || (m.manifest !== undefined && m.manifest !== null)) {
      throw new ProtocolError('only the first message of a stream may carry auth, body or manifest', 'unexpected_header');
    }
    if (!m.chunk) throw new ProtocolError('a message after the first must carry a chunk', 'missing_header');
    assembler.push(m.chunk);
  }
  return assembler.finish();
}

/** Splits an async iterable into its first item and the rest (iterating the same underlying stream). */
export async function firstAndRest<T>(source: AsyncIterable<T>): Promise<{ first: T | undefined; rest: AsyncIterable<T> }> {
  const it = source[Symbol.asyncIterator]();
  const head = await it.next();
  const rest: AsyncIterable<T> = { [Symbol.asyncIterator]: () => it };
  return { first: head.done ? undefined : head.value, rest };
}

/** Client side of FetchAdapter: reads the manifest from the first message, then assembles and verifies the payload. */
export async function receiveAdapter(
  stream: AsyncIterable<FetchAdapterResponse>,
  limits: Partial<AssemblyLimits> = {},
): Promise<{ manifest: TensorManifest; tensors: Map<string, HostTensor> }> {
  const { first, rest } = await firstAndRest(stream);
  if (!first?.manifest) throw new ProtocolError('FetchAdapter stream did not start with a manifest', 'missing_header');
  const tensors = await receivePayload(new TensorAssembler(first.manifest, limits), first.chunk, rest);
  return { manifest: first.manifest, tensors };
}

/**
 * The whole adapter from a FetchAdapter answer to omit_frozen (fleet.proto): `received`'s tensors, with `held`'s (an
 * earlier adapter of the same run, whose order is the adapter order) in the gaps. Undefined unless every received
 * tensor has its place and shape in `held` and the whole, in that order, hashes to `sha256`: the client then fetches
 * the adapter in full.
 */
export function completeAdapter(held: TensorMap, received: TensorMap, sha256: Uint8Array): Map<string, HostTensor> | undefined {
  if ([...received.keys()].some((name) => !held.has(name))) return undefined;
  const hash = createHash('sha256');
  const whole = new Map<string, HostTensor>();
  for (const [name, own] of held) {
    const t = received.get(name) ?? own;
    if (t.shape.length !== own.shape.length || t.shape.some((d, i) => d !== own.shape[i])) return undefined;
    hash.update(bytesOf(t.data));
    whole.set(name, t);
  }
  return hash.digest().equals(sha256) ? whole : undefined;
}
