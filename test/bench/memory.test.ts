import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { benchMemory } from '../../src/bench/memory.js';
import { DEFAULT_TRAIN_BENCH, type TrainBenchConfig } from '../../src/bench/train.js';
import { TINY, TINY_LORA } from '../train/fixtures.js';

const TINY_BENCH: TrainBenchConfig = Object.freeze({ ...DEFAULT_TRAIN_BENCH, model: TINY, lora: TINY_LORA, seqLen: 16, batchSize: 2, timed: 1, essaPairs: 1 });

describe('memory benchmark', () => {
  // Structure only: on a tiny model the runtime dominates RSS, so the ratios say nothing; BENCHMARKS.md records the
  // GPT-2-small-width numbers from `lethe bench memory`.
  it.skipIf(!existsSync('dist/bench/train.js'))('bench memory – reports the peak RSS of one child process per mode and the ratios to inference', async () => {
    const r = await benchMemory('wasm', TINY_BENCH);
    for (const mb of [r.rss_forward_mb, r.rss_mezo_mb, r.rss_essa_mb, r.rss_backprop_mb]) {
      expect(mb).toBeGreaterThan(20);
      expect(mb).toBeLessThan(4096);
    }
    expect(r.mezo_over_forward).toBeCloseTo(r.rss_mezo_mb / r.rss_forward_mb, 12);
    expect(r.essa_over_forward).toBeCloseTo(r.rss_essa_mb / r.rss_forward_mb, 12);
  });
});
