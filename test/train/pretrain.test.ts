import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { installWasmTransposedMatMul } from '../../src/backend/wasm-matmul.js';
import { pretrainCorpus } from '../../src/data/index.js';
import type { PretrainConfig } from '../../src/train/pretrain.js';
import { DEFAULT_PRETRAIN, baseDir, ensurePretrainedBase, pretrain, splitDocuments } from '../../src/train/pretrain.js';
import { TINY } from './fixtures.js';

const CONFIG: PretrainConfig = Object.freeze({ ...DEFAULT_PRETRAIN, model: TINY, steps: 25, batchSize: 4, seqLen: 16, lr: 3e-3, warmupSteps: 3, evalWindows: 8 });
const corpus = { name: 'moby-dick-tail', documents: pretrainCorpus().documents.slice(-40) };

describe('pretraining', () => {
  let dataDir: string;

  beforeAll(async () => {
    await initBackend('wasm');
    installWasmTransposedMatMul();
    dataDir = await mkdtemp(join(tmpdir(), 'lethe-pretrain-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('pretrain – lowers the language-model loss of a tiny model and leaks no tensors', async () => {
    const before = tf.memory().numTensors;
    const steps: number[] = [];
    const result = await pretrain(corpus.documents, CONFIG, (p) => steps.push(p.step));
    expect(result.lossBefore).toBeGreaterThan(5); // ≈ ln 257 at initialisation
    expect(result.lossAfter).toBeLessThan(result.lossBefore - 1);
    expect(result.heldOut.perplexity).toBeLessThan(Math.exp(result.lossBefore));
    expect(result.heldOut.tokens).toBe(8 * 16);
    expect(steps).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('pretrain – holds out every 20th document', () => {
    const docs = Array.from({ length: 45 }, (_, i) => `d${i}`);
    const { train, heldOut } = splitDocuments(docs, 20);
    expect(heldOut).toEqual(['d19', 'd39']);
    expect(train).toHaveLength(43);
  });

  it('pretrained base – is saved once, then reloaded with identical weights after its checksum is verified', async () => {
    const first = await ensurePretrainedBase(dataDir, { config: CONFIG, corpus });
    expect(first.trained).toBe(true);
    expect(first.dir).toBe(baseDir(dataDir));
    const second = await ensurePretrainedBase(dataDir, { config: CONFIG, corpus });
    expect(second.trained).toBe(false);
    expect(second.manifest.sha256).toBe(first.manifest.sha256);
    expect(second.config).toEqual(TINY);
    for (const [name, t] of first.weights) {
      const u = second.weights.get(name)!;
      expect(u.shape, name).toEqual(t.shape);
      expect(Buffer.compare(Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), name).toBe(0);
    }
  });

  it('pretrained base – detects a corrupted model file and retrains it only when forced', async () => {
    await ensurePretrainedBase(dataDir, { config: CONFIG, corpus });
    const file = join(baseDir(dataDir), 'model.safetensors');
    const bytes = await readFile(file);
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0x40;
    await writeFile(file, bytes);
    await expect(ensurePretrainedBase(dataDir, { config: CONFIG, corpus })).rejects.toMatchObject({ name: 'PretrainedBaseError', code: 'checksum_mismatch' });
    const forced = await ensurePretrainedBase(dataDir, { config: CONFIG, corpus, force: true });
    expect(forced.trained).toBe(true);
    expect((await ensurePretrainedBase(dataDir, { config: CONFIG, corpus })).trained).toBe(false);
  });

  it('pretrained base – refuses a stored model trained for another architecture', async () => {
    await ensurePretrainedBase(dataDir, { config: CONFIG, corpus });
    await expect(ensurePretrainedBase(dataDir, { config: { ...CONFIG, model: { ...TINY, nLayer: 1 } }, corpus })).rejects.toMatchObject({ code: 'stale' });
  });
});
