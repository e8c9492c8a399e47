/**
 * A run's tensor layout: which GPT-2 the run adapts, the adapter tensors it implies (names and shapes, in
 * initAdapter order), and the subset that clients upload. Also the byte form of tensors in the blob store: an adapter
 * or update blob is exactly the wire payload (tensor.proto: little-endian float32, layout order, no padding), so the
 * blob's SHA-256 is the payload's identity that tasks and acknowledgements name, and the layout says how to read it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { travellingTensors } from '../aggregation/index.js';
import { parseHfConfig } from '../model/checkpoint.js';
import { CheckpointError } from '../model/errors.js';
import { TINY_CONFIG, type GPT2Config } from '../model/gpt2.js';
import { HEAD_NAME, loraSlots, type LoraConfig, type LoraTarget } from '../model/lora.js';
import { sizeOf, type HostTensor, type TensorMap } from '../tensors/host.js';
import { ConfigError, InvalidRequestError } from './errors.js';
import type { RunConfig } from './run-config.js';

/** The base model every node builds from `ensurePretrainedBase` (src/train/pretrain.ts). */
export const BUILTIN_TINY = 'builtin:tiny';

/** Names and shapes, in payload order. */
export type Layout = ReadonlyMap<string, readonly number[]>;

export interface RunLayout {
  readonly model: GPT2Config;
  readonly lora: LoraConfig;
  /** Every adapter tensor (lora_A, lora_B per slot, then score.weight). */
  readonly adapter: Layout;
  /** The tensors a dense update carries (Task.upload_tensors), in adapter order: lora_B and the head under FFA. */
  readonly upload: Layout;
}

/**
 * The architecture of a run's base model: the built-in tiny GPT-2, or the config.json of a Hugging Face checkpoint
 * directory. Only the config is read here; weights load when evaluation or Predict needs them.
 */
export async function resolveModelConfig(baseModel: string): Promise<GPT2Config> {
  if (baseModel === BUILTIN_TINY) return TINY_CONFIG;
  if (baseModel.startsWith('builtin:')) throw new ConfigError(`base_model: unknown built-in model "${baseModel}"; use ${BUILTIN_TINY} or a checkpoint directory`);
  const path = join(baseModel, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`base_model: cannot read ${path} (${(err as Error).message}); give ${BUILTIN_TINY} or a GPT-2 checkpoint directory`, { cause: err });
  }
  try {
    return parseHfConfig(JSON.parse(text) as Record<string, unknown>, path);
  } catch (err) {
    const why = err instanceof CheckpointError ? err.message : `${path} is not JSON`;
    throw new ConfigError(`base_model: ${why}`, { cause: err });
  }
}

export function runLayout(model: GPT2Config, config: RunConfig): RunLayout {
  const lora: LoraConfig = Object.freeze({
    r: config.lora.r,
    alpha: config.lora.alpha,
    targets: config.lora.targets as readonly LoraTarget[],
    numLabels: config.labels.length,
    seed: config.lora.seed,
  });
  const adapter = new Map<string, readonly number[]>();
  for (const s of loraSlots(model, lora)) {
    adapter.set(s.a, [lora.r, s.dIn]);
    adapter.set(s.b, [s.dOut, lora.r]);
  }
  adapter.set(HEAD_NAME, [lora.numLabels, model.nEmbd]);
  const upload = new Map(travellingTensors(config.aggregation, adapter.keys()).map((n) => [n, adapter.get(n)!] as const));
  return Object.freeze({ model, lora, adapter, upload });
}

export function layoutBytes(layout: Layout): number {
  let n = 0;
  for (const shape of layout.values()) n += 4 * sizeOf(shape);
  return n;
}

/**
 * The payload bytes of `tensors` in `layout` order (they must match it exactly). When the tensors already lie back to
 * back in one buffer in that order (as aggregation's outputs and viewTensors' results do), the result is a view of
 * them, not a copy.
 */
export function packTensors(tensors: TensorMap, layout: Layout): Uint8Array {
  const datas: Float32Array[] = [];
  for (const [name, shape] of layout) {
    const t = tensors.get(name);
    if (!t || t.data.length !== sizeOf(shape)) throw new InvalidRequestError(`tensor ${name} is missing or not of shape [${shape.join(', ')}]`);
    datas.push(t.data);
  }
  if (tensors.size !== layout.size) throw new InvalidRequestError(`expected ${layout.size} tensors, got ${tensors.size}`);
  const packed = contiguousBytes(datas);
  if (packed) return packed;
  const out = Buffer.allocUnsafe(layoutBytes(layout));
  let offset = 0;
  for (const d of datas) {
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), offset);
    offset += d.byteLength;
  }
  return out;
}

/** The bytes of `datas` as one view when each starts where the one before ends in the same buffer; else undefined. */
function contiguousBytes(datas: readonly Float32Array[]): Uint8Array | undefined {
  const first = datas[0];
  if (first === undefined) return undefined;
  let end = first.byteOffset;
  for (const d of datas) {
    if (d.buffer !== first.buffer || d.byteOffset !== end) return undefined;
    end += d.byteLength;
  }
  return new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset);
}

/** Reads payload bytes laid out as `layout` (copied into fresh, aligned Float32Arrays: the caller may write them). */
export function unpackTensors(bytes: Uint8Array, layout: Layout): Map<string, HostTensor> {
  const total = layoutBytes(layout);
  if (bytes.byteLength !== total) throw new InvalidRequestError(`payload has ${bytes.byteLength} bytes; its layout needs ${total}`);
  const out = new Map<string, HostTensor>();
  let offset = 0;
  for (const [name, shape] of layout) {
    const data = new Float32Array(sizeOf(shape));
    new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + data.byteLength));
    offset += data.byteLength;
    out.set(name, { shape: [...shape], data });
  }
  return out;
}

/**
 * Reads payload bytes laid out as `layout` as Float32Array views of `bytes` where they start 4-byte aligned (a blob
 * read or received whole), copying only otherwise. For readers that never write the tensors, such as aggregation,
 * which returns new ones: a view of a cached blob that was written would change what the cache serves.
 */
export function viewTensors(bytes: Uint8Array, layout: Layout): Map<string, HostTensor> {
  if (bytes.byteOffset % 4 !== 0) return unpackTensors(bytes, layout);
  const total = layoutBytes(layout);
  if (bytes.byteLength !== total) throw new InvalidRequestError(`payload has ${bytes.byteLength} bytes; its layout needs ${total}`);
  const out = new Map<string, HostTensor>();
  let offset = bytes.byteOffset;
  for (const [name, shape] of layout) {
    const data = new Float32Array(bytes.buffer, offset, sizeOf(shape));
    offset += data.byteLength;
    out.set(name, { shape: [...shape], data });
  }
  return out;
}
