/**
 * Model-core benchmark on one backend: per model size, the time of an inference forward pass, a LoRA backprop step
 * and a MeZO step (through the real trainers), and the peak tensor memory of each (tf.profile's peakBytes: live
 * tensor bytes at the worst moment, which shows forward-only training keeping inference memory). Weights are random
 * (no download): timings depend on shapes, not values.
 */
import * as tf from '@tensorflow/tfjs';
import { type AdapterDescription, type BackendMemory, type BackendName, adapterInfo, backendMemory, initBackend } from '../../backend/backend.js';
import { installWasmTransposedMatMul } from '../../backend/wasm-matmul.js';
import { GPT2, GPT2_SMALL_WIDTH, type GPT2Config, TINY_CONFIG } from '../../model/gpt2.js';
import { DEFAULT_LORA, type LoraConfig, initAdapter, toTf } from '../../model/lora.js';
import { trainBackprop } from '../../train/backprop.js';
import { gatherBatch } from '../../train/batches.js';
import { trainMezo } from '../../train/mezo.js';
import { syntheticTask } from './parity.js';

export interface CoreBenchCase {
  readonly name: string;
  readonly model: GPT2Config;
  readonly batchSize: number;
  readonly seqLen: number;
}

export interface CoreBenchConfig {
  readonly cases: readonly CoreBenchCase[];
  readonly steps: number; // timed steps per trainer, after one untimed warm-up step (shader compilation, kernel setup)
  readonly lora: LoraConfig;
}

export const DEFAULT_CORE_BENCH: CoreBenchConfig = Object.freeze({
  cases: Object.freeze([
    Object.freeze({ name: 'tiny', model: TINY_CONFIG, batchSize: 16, seqLen: 128 }), // the embedded default model
    Object.freeze({ name: 'gpt2-small-width', model: GPT2_SMALL_WIDTH, batchSize: 8, seqLen: 128 }), // 768 wide, 2 layers
  ]),
  steps: 5,
  lora: DEFAULT_LORA,
});

export interface CoreBenchResult {
  readonly name: string;
  readonly batchSize: number;
  readonly seqLen: number;
  readonly forward_ms: number; // one classify pass over the batch (inference)
  readonly backprop_step_ms: number; // trainBackprop, LoRA A+B+head, AdamW
  readonly mezo_step_ms: number; // trainMezo: two forward passes and the host-side update
  readonly forward_peak_bytes: number;
  readonly backprop_peak_bytes: number;
  readonly mezo_peak_bytes: number;
}

export interface CoreBenchReport {
  readonly backend: BackendName;
  readonly adapter?: AdapterDescription;
  readonly steps: number;
  readonly results: readonly CoreBenchResult[];
  /** After all cases, everything disposed: on webgpu, gpuBytesAllocated is the buffer pool Dawn still holds. */
  readonly memory: BackendMemory;
}

async function peakBytes(f: () => Promise<unknown>): Promise<number> {
  const info = await tf.profile(async () => {
    await f();
    return [] as tf.Tensor[];
  });
  return info.peakBytes;
}

async function benchCase(c: CoreBenchCase, config: CoreBenchConfig): Promise<CoreBenchResult> {
  const model = GPT2.init({ ...c.model, nPositions: Math.max(c.model.nPositions, c.seqLen) }, `bench-${c.name}`);
  const lora = config.lora;
  const start = initAdapter(model.config, lora);
  const data = syntheticTask(c.batchSize * 4, c.seqLen, `bench-${c.name}`);
  const batch = gatherBatch(data, Array.from({ length: c.batchSize }, (_, i) => i));
  const tensors = toTf(start);
  try {
    const forward = async (): Promise<void> => {
      const logits = tf.tidy(() => {
        const ids = tf.tensor2d(batch.ids, [batch.size, batch.seqLen], 'int32');
        const mask = tf.tensor2d(batch.mask, [batch.size, batch.seqLen]);
        return model.classify(ids, mask, { config: lora, tensors });
      });
      await logits.data(); // waits for the GPU
      logits.dispose();
    };
    const base = { batchSize: c.batchSize, seed: 1, trainable: 'lora' as const };
    const backprop = (steps: number) => trainBackprop(model, lora, start, data, { ...base, steps, lr: 1e-3 });
    const mezo = (steps: number) => trainMezo(model, lora, start, data, { ...base, steps, lr: 1e-4, eps: 1e-3 });

    await forward(); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < config.steps; i++) await forward();
    const forwardMs = (performance.now() - t0) / config.steps;
    await backprop(1);
    const bp = await backprop(config.steps);
    await mezo(1);
    const mz = await mezo(config.steps);
    return {
      name: c.name,
      batchSize: c.batchSize,
      seqLen: c.seqLen,
      forward_ms: round(forwardMs),
      backprop_step_ms: round((bp.metrics.seconds * 1000) / config.steps),
      mezo_step_ms: round((mz.metrics.seconds * 1000) / config.steps),
      forward_peak_bytes: await peakBytes(forward),
      backprop_peak_bytes: await peakBytes(() => backprop(1)),
      mezo_peak_bytes: await peakBytes(() => mezo(1)),
    };
  } finally {
    for (const t of tensors.values()) t.dispose();
    model.dispose();
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** Activates `backend` (forced; kept if already active) and runs every case of `config` on it. */
export async function benchModelCore(backend: BackendName, overrides: Partial<CoreBenchConfig> = {}): Promise<CoreBenchReport> {
  const config: CoreBenchConfig = { ...DEFAULT_CORE_BENCH, ...overrides };
  if (tf.getBackend() !== backend) await initBackend(backend);
  installWasmTransposedMatMul();
  const results: CoreBenchResult[] = [];
  for (const c of config.cases) results.push(await benchCase(c, config));
  const adapter = adapterInfo();
  return { backend, ...(adapter ? { adapter } : {}), steps: config.steps, results, memory: backendMemory() };
}
