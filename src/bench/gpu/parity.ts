/**
 * Backend parity: every trainer (LoRA backprop, DP-SGD, MeZO, ESSA) and inference, run unchanged on `cpu` (the
 * numerics reference) and then on a target backend in the same process, on a tiny model and a synthetic task.
 * Reports the largest absolute difference between the two runs' adapters (and logits), step times and memory.
 *
 * Used by the webgpu test (in a child process, so a Dawn crash cannot take the test runner down) and by
 * `lethe doctor --check`. The result is plain data; the caller decides what tolerance passes (the issue's 1e-4).
 */
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { type AdapterDescription, type BackendMemory, type BackendName, adapterInfo, backendMemory, initBackend } from '../../backend/backend.js';
import { installWasmTransposedMatMul } from '../../backend/wasm-matmul.js';
import { GPT2, type GPT2Config } from '../../model/gpt2.js';
import { type LoraConfig, initAdapter, toTf } from '../../model/lora.js';
import { gaussianNoise } from '../../privacy/gaussian.js';
import type { TensorMap } from '../../tensors/host.js';
import { trainBackprop } from '../../train/backprop.js';
import { gatherBatch } from '../../train/batches.js';
import { trainEssa } from '../../train/essa.js';
import { trainMezo } from '../../train/mezo.js';
import type { EncodedExamples } from '../../train/types.js';

/** Names of the runs compared, in run order. */
export const PARITY_RUNS = ['inference', 'backprop', 'dpsgd', 'mezo', 'essa'] as const;
export type ParityRun = (typeof PARITY_RUNS)[number];

export interface ParityConfig {
  readonly model: GPT2Config; // the test model: width 32, 2 layers, 16 positions
  readonly lora: LoraConfig; // r 4 on every target, with a 2-label head
  readonly examples: number; // synthetic task size
  readonly steps: number; // steps of each trainer
  readonly batchSize: number;
  readonly seed: number;
  readonly runs: readonly ParityRun[]; // which of PARITY_RUNS to compare
}

export const DEFAULT_PARITY: ParityConfig = Object.freeze({
  model: Object.freeze({ vocabSize: 257, nPositions: 16, nEmbd: 32, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 }),
  lora: Object.freeze({
    r: 4,
    alpha: 8,
    targets: Object.freeze(['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const),
    numLabels: 2,
    seed: 'parity-lora',
  }),
  examples: 32,
  steps: 2, // step 1 moves lora_B off zero; step 2 then gives lora_A a gradient too
  batchSize: 8,
  seed: 11,
  runs: PARITY_RUNS,
});

export interface ParityReport {
  readonly backend: BackendName;
  readonly adapter?: AdapterDescription;
  /** max |target − cpu| over every value each run produced (logits for inference, the whole adapter otherwise). */
  readonly maxAbsDiff: Readonly<Partial<Record<ParityRun, number>>>;
  /** Wall time of each run on the target, ms (the first includes shader compilation on GPU backends). */
  readonly targetMs: Readonly<Partial<Record<ParityRun, number>>>;
  readonly cpuMs: Readonly<Partial<Record<ParityRun, number>>>;
  /** The target's memory after the runs, all run tensors disposed (GPU counters where the backend has them). */
  readonly memory: BackendMemory;
  /** Tensors left behind by the target's runs: must be 0. */
  readonly leakedTensors: number;
}

/** n examples of length seqLen: tokens from a 16-symbol alphabet, label = last real token in the upper half. */
export function syntheticTask(n: number, seqLen: number, seed: string): EncodedExamples {
  const rng = seedrandom.alea(seed);
  const ids = new Int32Array(n * seqLen);
  const mask = new Float32Array(n * seqLen);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const len = 4 + Math.floor(rng() * (seqLen - 3));
    for (let t = 0; t < len; t++) {
      ids[i * seqLen + t] = 1 + 7 * Math.floor(rng() * 16);
      mask[i * seqLen + t] = 1;
    }
    labels[i] = ids[i * seqLen + len - 1]! >= 57 ? 1 : 0;
  }
  return { n, seqLen, ids, mask, labels };
}

type Outputs = Partial<Record<ParityRun, Float32Array>>;
type Times = Partial<Record<ParityRun, number>>;

function flat(adapter: TensorMap): Float32Array {
  const parts = [...adapter.values()].map((t) => t.data);
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Runs `config.runs` once on the active backend; the model is built here so its weights live on that backend. */
async function runAll(config: ParityConfig, times: Times): Promise<Outputs> {
  const model = GPT2.init(config.model, 'parity-base');
  const start = initAdapter(config.model, config.lora);
  const data = syntheticTask(config.examples, config.model.nPositions, 'parity-task');
  const base = { steps: config.steps, batchSize: config.batchSize, seed: config.seed };
  const lora = config.lora;
  const runs: Record<ParityRun, () => Promise<Float32Array>> = {
    inference: async () => {
      // One training-sized batch: the same shapes as the trainers' passes, so GPU backends compile no extra shaders.
      const batch = gatherBatch(data, Array.from({ length: config.batchSize }, (_, i) => i));
      const tensors = toTf(start);
      const logits = tf.tidy(() => {
        const ids = tf.tensor2d(batch.ids, [batch.size, batch.seqLen], 'int32');
        const mask = tf.tensor2d(batch.mask, [batch.size, batch.seqLen]);
        return model.classify(ids, mask, { config: lora, tensors });
      });
      try {
        return (await logits.data()) as Float32Array;
      } finally {
        logits.dispose();
        for (const t of tensors.values()) t.dispose();
      }
    },
    backprop: async () => flat((await trainBackprop(model, lora, start, data, { ...base, lr: 1e-2, trainable: 'lora' })).adapter),
    dpsgd: async () => {
      // σ = 0: clipping, Poisson batches and the fixed denominator all run; the noise is zeros on both backends.
      const dp = { clip: 1, noiseMultiplier: 0, sampleRate: config.batchSize / config.examples, noise: gaussianNoise };
      return flat((await trainBackprop(model, lora, start, data, { ...base, lr: 1e-2, trainable: 'lora' }, dp)).adapter);
    },
    mezo: async () => flat((await trainMezo(model, lora, start, data, { ...base, lr: 1e-2, eps: 1e-3, trainable: 'lora' })).adapter),
    essa: async () => flat((await trainEssa(model, lora, start, data, { ...base, pairs: 4, fitness: 'loss' })).adapter),
  };
  const out: Outputs = {};
  try {
    for (const name of config.runs) {
      const t0 = performance.now();
      out[name] = await runs[name]();
      times[name] = performance.now() - t0;
    }
  } finally {
    model.dispose();
  }
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(m) || a.some((v) => Number.isNaN(v)) || b.some((v) => Number.isNaN(v)) ? NaN : m;
}

/**
 * Runs `config.runs` on cpu, then activates `target` (forced, so a software WebGPU adapter is accepted) and runs them
 * again. Leaves `target` as the active backend.
 */
export async function runParity(target: BackendName, config: ParityConfig = DEFAULT_PARITY): Promise<ParityReport> {
  await initBackend('cpu');
  const cpuMs: Times = {};
  const reference = await runAll(config, cpuMs);
  await initBackend(target);
  installWasmTransposedMatMul();
  const before = tf.memory().numTensors;
  const targetMs: Times = {};
  const got = await runAll(config, targetMs);
  const leakedTensors = tf.memory().numTensors - before;
  const diffs: Times = Object.fromEntries(config.runs.map((r) => [r, maxAbsDiff(got[r]!, reference[r]!)]));
  const adapter = adapterInfo();
  return { backend: target, ...(adapter ? { adapter } : {}), maxAbsDiff: diffs, targetMs, cpuMs, memory: backendMemory(), leakedTensors };
}
