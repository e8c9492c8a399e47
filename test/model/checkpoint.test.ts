import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/model/checkpoint.js';
import { CheckpointError, WeightsError } from '../../src/model/errors.js';
import { GPT2 } from '../../src/model/gpt2.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { idsTensor, randomWeights, TEST_CONFIG } from './fixtures.js';
import { maxAbsDiff, referenceLogits } from './reference-gpt2.js';

/** Float → IEEE half bits (round to nearest), written independently of the decoder under test. */
function toHalf(v: number): number {
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a < 2 ** -24) return sign;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24); // subnormal
  let e = Math.floor(Math.log2(a));
  let m = Math.round((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e += 1;
  }
  return sign | ((e + 15) << 10) | m;
}

function fromHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A safetensors file built by the test itself, in F32 or F16. */
function safetensorsBytes(tensors: ReadonlyMap<string, HostTensor>, dtype: 'F32' | 'F16'): Uint8Array {
  const size = dtype === 'F32' ? 4 : 2;
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length * size] };
    offset += t.data.length * size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors.values()) {
    for (const v of t.data) {
      if (dtype === 'F32') view.setFloat32(at, v, true);
      else view.setUint16(at, toHalf(v), true);
      at += size;
    }
  }
  return out;
}

const HF_CONFIG = {
  model_type: 'gpt2',
  activation_function: 'gelu_new',
  vocab_size: TEST_CONFIG.vocabSize,
  n_positions: TEST_CONFIG.nPositions,
  n_embd: TEST_CONFIG.nEmbd,
  n_layer: TEST_CONFIG.nLayer,
  n_head: TEST_CONFIG.nHead,
  n_inner: null,
  layer_norm_epsilon: 1e-5,
};

async function writeCheckpoint(name: string, tensors: ReadonlyMap<string, HostTensor>, dtype: 'F32' | 'F16', config: object = HF_CONFIG): Promise<string> {
  const out = join(dir, name);
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'config.json'), JSON.stringify(config));
  await writeFile(join(out, 'model.safetensors'), safetensorsBytes(tensors, dtype));
  return out;
}

/** Logits from a loaded checkpoint compared with the float64 reference on `expected` weights. */
function logitsGap(loaded: Awaited<ReturnType<typeof loadCheckpoint>>, expected: ReadonlyMap<string, HostTensor>): number {
  const model = new GPT2(loaded.config, loaded.weights);
  const ids = idsTensor(1, 6, TEST_CONFIG.vocabSize, 3);
  const ours = tf.tidy(() => model.lmLogits(ids).arraySync()[0]!);
  const ref = referenceLogits(TEST_CONFIG, expected, ids.arraySync()[0]!);
  model.dispose();
  ids.dispose();
  return Math.max(...ref.map((r, t) => maxAbsDiff(ours[t]!, r)));
}

let dir: string;
beforeAll(async () => {
  await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'lethe-ckpt-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('checkpoint loading', () => {
  it('checkpoint – HF names with the transformer. prefix load, ignoring lm_head and attention buffers; logits match the reference', async () => {
    // Arrange: HF GPT2LMHeadModel state dict layout, old-style buffers included
    const weights = randomWeights(TEST_CONFIG, 'prefixed');
    const hf = new Map<string, HostTensor>();
    for (const [name, t] of weights) hf.set(`transformer.${name}`, t);
    hf.set('lm_head.weight', weights.get('wte.weight')!);
    const p = TEST_CONFIG.nPositions;
    hf.set('transformer.h.0.attn.bias', { shape: [1, 1, p, p], data: new Float32Array(p * p) });
    hf.set('transformer.h.0.attn.masked_bias', { shape: [], data: Float32Array.from([-1e4]) });
    const path = await writeCheckpoint('prefixed', hf, 'F32');
    // Act
    const loaded = await loadCheckpoint(path);
    // Assert
    expect(loaded.config).toEqual(TEST_CONFIG);
    expect([...loaded.weights.keys()]).toEqual([...weights.keys()]);
    expect(logitsGap(loaded, weights)).toBeLessThan(1e-4);
  });

  it('checkpoint – an F16 checkpoint without prefix loads; logits match the reference on the half-rounded weights', async () => {
    const weights = randomWeights(TEST_CONFIG, 'half');
    const path = await writeCheckpoint('half', weights, 'F16');
    const rounded = new Map([...weights].map(([n, t]) => [n, { shape: t.shape, data: t.data.map((v) => fromHalf(toHalf(v))) }]));
    const loaded = await loadCheckpoint(path);
    expect(loaded.weights.get('h.1.mlp.c_fc.weight')!.data).toEqual(rounded.get('h.1.mlp.c_fc.weight')!.data);
    expect(logitsGap(loaded, rounded)).toBeLessThan(1e-4);
  });

  it('checkpoint – a sharded checkpoint (model.safetensors.index.json) loads from all its shards', async () => {
    const weights = randomWeights(TEST_CONFIG, 'sharded');
    const out = join(dir, 'sharded');
    await mkdir(out, { recursive: true });
    const names = [...weights.keys()];
    const shards = [names.slice(0, 10), names.slice(10)];
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeFile(join(out, file), safetensorsBytes(new Map(shard.map((n) => [n, weights.get(n)!])), 'F32'));
      for (const n of shard) weightMap[n] = file;
    }
    await writeFile(join(out, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await writeFile(join(out, 'config.json'), JSON.stringify(HF_CONFIG));
    const loaded = await loadCheckpoint(out);
    expect(loaded.weights.get('ln_f.bias')!.data).toEqual(weights.get('ln_f.bias')!.data);
  });

  it('checkpoint – missing, unexpected and mis-shaped tensors are WeightsErrors that name them', async () => {
    const weights = randomWeights(TEST_CONFIG, 'bad');
    const missing = new Map(weights);
    missing.delete('h.1.attn.c_proj.bias');
    const extra = new Map(weights).set('h.0.attn.rotary.weight', { shape: [1], data: new Float32Array(1) });
    const misShaped = new Map(weights).set('wpe.weight', { shape: [8, 16], data: new Float32Array(128) });
    const cases: [Map<string, HostTensor>, string, RegExp][] = [
      [missing, 'missing_weight', /h\.1\.attn\.c_proj\.bias/],
      [extra, 'unexpected_weight', /h\.0\.attn\.rotary\.weight/],
      [misShaped, 'weight_shape', /wpe\.weight is \[8, 16\], expected \[16, 16\]/],
    ];
    for (const [i, [tensors, code, message]] of cases.entries()) {
      const path = await writeCheckpoint(`bad-${i}`, tensors, 'F32');
      const err = await loadCheckpoint(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WeightsError);
      expect((err as WeightsError).code).toBe(code);
      expect((err as Error).message).toMatch(message);
    }
  });

  it('checkpoint – refuses config.json variants the model would compute differently, and a missing config', async () => {
    const weights = randomWeights(TEST_CONFIG, 'cfg');
    const exactGelu = await writeCheckpoint('gelu', weights, 'F32', { ...HF_CONFIG, activation_function: 'gelu' });
    await expect(loadCheckpoint(exactGelu)).rejects.toThrow(/activation_function "gelu"/);
    const inner = await writeCheckpoint('inner', weights, 'F32', { ...HF_CONFIG, n_inner: 8 });
    await expect(loadCheckpoint(inner)).rejects.toThrow(/n_inner/);
    const err = await loadCheckpoint(join(dir, 'nowhere')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).code).toBe('missing_file');
  });
});

describe('checkpoint saving', () => {
  it('checkpoint – save then load round-trips config and weights; sha256 is the hash of model.safetensors', async () => {
    // Arrange
    const weights = randomWeights(TEST_CONFIG, 'save');
    const out = join(dir, 'saved');
    // Act
    const { sha256 } = await saveCheckpoint(out, TEST_CONFIG, weights, { 'lethe.run': 'r1' });
    const loaded = await loadCheckpoint(out);
    // Assert
    expect(loaded.config).toEqual(TEST_CONFIG);
    for (const [name, t] of weights) expect(loaded.weights.get(name)!.data).toEqual(t.data);
    expect(sha256).toBe(createHash('sha256').update(await readFile(join(out, 'model.safetensors'))).digest('hex'));
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_embd: 16, n_layer: 2, n_head: 2, vocab_size: 257 });
  });

  it('checkpoint – refuses to save weights that do not match the config', async () => {
    const weights = randomWeights(TEST_CONFIG, 'nosave');
    weights.delete('wte.weight');
    await expect(saveCheckpoint(join(dir, 'nosave'), TEST_CONFIG, weights)).rejects.toThrow(WeightsError);
  });
});
