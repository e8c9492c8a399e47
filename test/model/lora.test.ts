import * as tf from '@tensorflow/tfjs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { AdapterError, ModelConfigError } from '../../src/model/errors.js';
import { GPT2 } from '../../src/model/gpt2.js';
import {
  DEFAULT_LORA,
  initAdapter,
  loadPeftAdapter,
  loraSlots,
  mergeAdapter,
  savePeftAdapter,
  toHost,
  toTf,
  unmergeAdapter,
  validateAdapter,
} from '../../src/model/lora.js';
import { decodeSafetensors } from '../../src/tensors/safetensors.js';
import { idsTensor, maskTensor, randomAdapter, randomWeights, TEST_CONFIG, TEST_LORA } from './fixtures.js';
import { maxAbsDiff } from './reference-gpt2.js';

let dir: string;
beforeAll(async () => {
  await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'lethe-lora-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lora merge', () => {
  it('lora – forward with a non-zero adapter equals the forward of the merged weights (≤ 1e-5)', () => {
    // Arrange
    const base = randomWeights(TEST_CONFIG, 'merge');
    const adapter = randomAdapter(TEST_CONFIG, TEST_LORA, 'merge');
    const model = new GPT2(TEST_CONFIG, base);
    const merged = new GPT2(TEST_CONFIG, mergeAdapter(base, adapter, TEST_CONFIG, TEST_LORA));
    const tensors = toTf(adapter);
    const ids = idsTensor(2, 7, TEST_CONFIG.vocabSize);
    // Act
    const [viaLora, viaMerge, plain] = tf.tidy(() => [
      model.lmLogits(ids, { config: TEST_LORA, tensors }).dataSync(),
      merged.lmLogits(ids).dataSync(),
      model.lmLogits(ids).dataSync(),
    ]);
    // Assert
    expect(maxAbsDiff(viaLora!, viaMerge!)).toBeLessThan(1e-5);
    expect(maxAbsDiff(viaLora!, plain!)).toBeGreaterThan(1e-2); // the adapter really changes the output
    tf.dispose([ids, ...tensors.values()]);
    model.dispose();
    merged.dispose();
  });

  it('lora – unmerge restores the base weights and leaves untargeted weights untouched', () => {
    const base = randomWeights(TEST_CONFIG, 'unmerge');
    const lora = { ...TEST_LORA, targets: ['attn.c_attn'] as const };
    const adapter = randomAdapter(TEST_CONFIG, lora, 'unmerge');
    const merged = mergeAdapter(base, adapter, TEST_CONFIG, lora);
    const restored = unmergeAdapter(merged, adapter, TEST_CONFIG, lora);
    expect(maxAbsDiff(merged.get('h.0.attn.c_attn.weight')!.data, base.get('h.0.attn.c_attn.weight')!.data)).toBeGreaterThan(1e-2);
    expect(merged.get('h.0.mlp.c_fc.weight')!.data).toEqual(base.get('h.0.mlp.c_fc.weight')!.data);
    for (const [name, t] of base) expect(maxAbsDiff(restored.get(name)!.data, t.data)).toBeLessThan(1e-6);
    expect(merged.has('score.weight')).toBe(false);
  });
});

describe('lora init', () => {
  it('lora – initAdapter is bitwise deterministic, B is zero and A lies within PEFT\'s Kaiming-uniform bound', () => {
    const a = initAdapter(TEST_CONFIG, TEST_LORA);
    const b = initAdapter(TEST_CONFIG, TEST_LORA);
    const other = initAdapter(TEST_CONFIG, { ...TEST_LORA, seed: 'another' });
    expect([...a.keys()]).toEqual([...b.keys()]);
    for (const [name, t] of a) {
      expect(Buffer.from(t.data.buffer).equals(Buffer.from(b.get(name)!.data.buffer))).toBe(true);
      if (name.includes('lora_B')) expect(t.data.every((v) => v === 0)).toBe(true);
      if (name.includes('lora_A')) {
        const bound = 1 / Math.sqrt(t.shape[1]!);
        expect(t.data.every((v) => Math.abs(v) <= bound)).toBe(true);
        expect(t.data.some((v) => v !== 0)).toBe(true);
        expect(other.get(name)!.data).not.toEqual(t.data);
      }
    }
    expect(a.get('score.weight')!.shape).toEqual([3, 16]);
  });

  it('lora – slots cover every layer with PyTorch-orientation factor shapes', () => {
    const slots = loraSlots(TEST_CONFIG, TEST_LORA);
    expect(slots).toHaveLength(TEST_CONFIG.nLayer * 4);
    expect(slots[0]).toEqual({ layer: 0, module: 'attn.c_attn', a: 'h.0.attn.c_attn.lora_A.weight', b: 'h.0.attn.c_attn.lora_B.weight', dIn: 16, dOut: 48 });
    expect(slots.find((s) => s.module === 'mlp.c_proj')).toMatchObject({ dIn: 64, dOut: 16 });
    expect(() => loraSlots(TEST_CONFIG, { ...TEST_LORA, targets: ['attn.q_proj' as never] })).toThrow(ModelConfigError);
    expect(DEFAULT_LORA).toMatchObject({ r: 8, alpha: 16, targets: ['attn.c_attn', 'attn.c_proj'], numLabels: 2, seed: 'lethe' });
  });

  it('lora – validateAdapter rejects a missing factor and a wrong shape', () => {
    const adapter = initAdapter(TEST_CONFIG, TEST_LORA);
    const missing = new Map(adapter);
    missing.delete('h.1.mlp.c_fc.lora_A.weight');
    expect(() => validateAdapter(missing, TEST_CONFIG, TEST_LORA)).toThrow(/h\.1\.mlp\.c_fc\.lora_A\.weight/);
    const wrong = new Map(adapter).set('h.0.attn.c_attn.lora_B.weight', { shape: [16, 4], data: new Float32Array(64) });
    expect(() => validateAdapter(wrong, TEST_CONFIG, TEST_LORA)).toThrow(AdapterError);
  });

  it('lora – backprop from B = 0 gives non-zero gradients for B and the head, and zero for A', () => {
    const model = new GPT2(TEST_CONFIG, randomWeights(TEST_CONFIG, 'grad'));
    const tensors = toTf(initAdapter(TEST_CONFIG, TEST_LORA));
    const names = [...tensors.keys()];
    const ids = idsTensor(2, 6, TEST_CONFIG.vocabSize);
    const mask = maskTensor([6, 3], 6);
    const labels = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3);
    const norms = new Map<string, number>();
    tf.tidy(() => {
      const grads = tf.grads((...ts: tf.Tensor[]) => {
        const lora = { config: TEST_LORA, tensors: new Map(names.map((n, i) => [n, ts[i]!])) };
        return tf.losses.softmaxCrossEntropy(labels, model.classify(ids, mask, lora)) as tf.Scalar;
      })([...tensors.values()]);
      names.forEach((n, i) => norms.set(n, tf.norm(grads[i]!).dataSync()[0]!));
    });
    for (const [name, n] of norms) {
      if (name.includes('lora_A')) expect(n).toBe(0);
      else expect(n).toBeGreaterThan(0);
    }
    model.dispose();
    tf.dispose([ids, mask, labels, ...tensors.values()]);
  });
});

describe('lora PEFT files', () => {
  it('lora – a PEFT adapter round-trips tensors, r, alpha, targets, head size and seed', async () => {
    // Arrange
    const lora = { ...TEST_LORA, seed: 'round-trip' };
    const adapter = randomAdapter(TEST_CONFIG, lora, 'peft');
    const out = join(dir, 'adapter');
    // Act
    await savePeftAdapter(out, adapter, lora, 'lethe/tiny');
    const loaded = await loadPeftAdapter(out);
    // Assert
    expect(loaded.baseModel).toBe('lethe/tiny');
    expect(loaded.lora).toEqual(lora);
    expect([...loaded.adapter.keys()].sort()).toEqual([...adapter.keys()].sort());
    for (const [name, t] of adapter) {
      expect(loaded.adapter.get(name)!.shape).toEqual(t.shape);
      expect(loaded.adapter.get(name)!.data).toEqual(t.data);
    }
  });

  it('lora – adapter files use PEFT key names and adapter_config fields', async () => {
    const out = join(dir, 'peft-layout');
    await savePeftAdapter(out, initAdapter(TEST_CONFIG, DEFAULT_LORA), DEFAULT_LORA, 'gpt2');
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    const { tensors } = decodeSafetensors(new Uint8Array(await readFile(join(out, 'adapter_model.safetensors'))));
    expect(config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'SEQ_CLS',
      r: 8,
      lora_alpha: 16,
      target_modules: ['attn.c_attn', 'attn.c_proj'],
      fan_in_fan_out: true,
      modules_to_save: ['score'],
      base_model_name_or_path: 'gpt2',
    });
    expect(tensors.get('base_model.model.transformer.h.1.attn.c_proj.lora_A.weight')!.shape).toEqual([8, 16]);
    expect(tensors.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight')!.shape).toEqual([48, 8]);
    expect(tensors.get('base_model.model.score.weight')!.shape).toEqual([2, 16]);
  });

  it('lora – toHost copies device tensors back unchanged', () => {
    const host = randomAdapter(TEST_CONFIG, TEST_LORA, 'host');
    const tensors = toTf(host);
    const back = toHost(tensors);
    for (const [name, t] of host) expect(back.get(name)!.data).toEqual(t.data);
    tf.dispose([...tensors.values()]);
  });
});
