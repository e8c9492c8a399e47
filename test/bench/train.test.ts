import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import type { TrainBenchConfig } from '../../src/bench/train.js';
import { DEFAULT_TRAIN_BENCH, benchSetup, measureBackpropMs, measureChildRssMb, measureForwardMs, measureMatmulGflops, measureMezoMs, modelParams } from '../../src/bench/train.js';
import { GPT2_SMALL_WIDTH } from '../../src/model/gpt2.js';
import { TINY, TINY_LORA } from '../train/fixtures.js';

const TINY_BENCH: TrainBenchConfig = Object.freeze({ ...DEFAULT_TRAIN_BENCH, model: TINY, lora: TINY_LORA, seqLen: 16, batchSize: 2, timed: 1, matmulSize: 64 });

describe('training benchmark', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('bench – counts GPT-2 small width parameters as embeddings plus 12·d² per layer (plus biases and norms)', () => {
    const d = 768;
    const perLayer = 12 * d * d + 13 * d; // c_attn 3d²+3d, attn c_proj d²+d, c_fc 4d²+4d, mlp c_proj 4d²+d, 2 LayerNorms 4d
    expect(modelParams(GPT2_SMALL_WIDTH)).toBe(257 * d + 128 * d + 2 * perLayer + 2 * d);
  });

  it('bench – measures positive finite step times and matMul throughput on a tiny model', async () => {
    expect(measureMatmulGflops(64, 1)).toBeGreaterThan(0);
    const s = benchSetup(TINY_BENCH);
    try {
      for (const ms of [measureForwardMs(TINY_BENCH, s), await measureBackpropMs(TINY_BENCH, s), await measureMezoMs(TINY_BENCH, s)]) {
        expect(Number.isFinite(ms)).toBe(true);
        expect(ms).toBeGreaterThan(0);
      }
    } finally {
      s.dispose();
    }
  });

  it.skipIf(!existsSync('dist/bench/train.js'))('bench – reports the peak RSS of a separate child process', async () => {
    const mb = await measureChildRssMb('forward', 'wasm', TINY_BENCH);
    expect(mb).toBeGreaterThan(20);
    expect(mb).toBeLessThan(4096);
  });
});
