/**
 * `lethe bench train`: what one training step costs on this machine's backend, at GPT-2 small's width
 * (GPT2_SMALL_WIDTH: d 768, 12 heads, 2 layers; seq 128, batch 8; LoRA r 8 on c_attn and c_proj, FFA).
 *
 * One JSON line:
 *   matmul_gflops      peak of a 1024³ matMul on the same backend, same run (the ceiling the model can approach)
 *   backprop_gflops    model FLOP/s of LoRA backprop, counting 2·params·tokens per forward and 4·params·tokens per
 *                      LoRA backprop step (activation gradients only: the frozen base gets no weight gradients)
 *   forward_ms, backprop_ms, mezo_ms, essa_ms   per step (mezo: two forwards; essa: one generation of ESSA_PAIRS
 *                      antithetic pairs, i.e. 2·ESSA_PAIRS forwards)
 *   rss_forward_mb, rss_mezo_mb, rss_essa_mb, rss_backprop_mb   peak RSS of a SEPARATE child process doing only that
 *                      (`node dist/bench/train.js --child <mode>`), so one mode's memory never hides another's
 *
 * FLOPs use the parameter count of the whole model (embeddings included), the nanoGPT/Kaplan convention; attention's
 * T² term is left out, as in that convention.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { type BackendName, adapterInfo, initBackend, parseBackendName } from '../backend/backend.js';
import type { AdapterDescription } from '../backend/webgpu.js';
import { installWasmTransposedMatMul } from '../backend/wasm-matmul.js';
import { GPT2, GPT2_SMALL_WIDTH, type GPT2Config, weightShapes } from '../model/gpt2.js';
import { DEFAULT_LORA, type LoraConfig, initAdapter, toTf } from '../model/lora.js';
import type { HostTensor } from '../tensors/host.js';
import { trainBackprop } from '../train/backprop.js';
import type { HostBatch } from '../train/batches.js';
import { trainEssa } from '../train/essa.js';
import { classificationLoss } from '../train/loss.js';
import { trainMezo } from '../train/mezo.js';
import type { EncodedExamples, StepInfo } from '../train/types.js';

/** The benchmark's fixed workload. */
export interface TrainBenchConfig {
  readonly model: GPT2Config; // GPT2_SMALL_WIDTH
  readonly seqLen: number; // 128
  readonly batchSize: number; // 8
  readonly lora: LoraConfig; // r 8, alpha 16, c_attn + c_proj, 2 labels
  readonly warmup: number; // untimed steps first (kernel setup, wasm heap growth)
  readonly timed: number; // timed steps per mode; the mean is reported
  readonly essaPairs: number; // antithetic pairs per ESSA generation
  readonly matmulSize: number; // n of the n×n·n×n peak matMul
}

export const DEFAULT_TRAIN_BENCH: TrainBenchConfig = Object.freeze({
  model: GPT2_SMALL_WIDTH,
  seqLen: 128,
  batchSize: 8,
  lora: DEFAULT_LORA,
  warmup: 1,
  timed: 2,
  essaPairs: 2,
  matmulSize: 1024,
});

export const CHILD_MODES = ['forward', 'mezo', 'essa', 'backprop'] as const;
export type ChildMode = (typeof CHILD_MODES)[number];

export interface TrainBenchResult {
  readonly backend: string;
  /** The GPU adapter (vendor/architecture/description) on webgpu; absent on other backends. */
  readonly adapter?: AdapterDescription;
  readonly params: number;
  readonly tokens_per_step: number;
  readonly matmul_gflops: number;
  readonly backprop_gflops: number;
  readonly forward_ms: number;
  readonly backprop_ms: number;
  readonly mezo_ms: number;
  readonly essa_ms: number;
  readonly essa_pairs: number;
  readonly rss_forward_mb: number;
  readonly rss_mezo_mb: number;
  readonly rss_essa_mb: number;
  readonly rss_backprop_mb: number;
}

/** Parameters of the base model (the FLOP count's `params`). */
export function modelParams(config: GPT2Config): number {
  let n = 0;
  for (const shape of weightShapes(config).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/** Best-of-`reps` GFLOP/s of an n×n by n×n matMul (2n³ FLOPs), read back so the work really happens. */
export function measureMatmulGflops(n: number, reps = 3): number {
  const [a, b] = tf.tidy(() => [tf.randomNormal([n, n], 0, 1, 'float32', 1), tf.randomNormal([n, n], 0, 1, 'float32', 2)]);
  let best = Number.POSITIVE_INFINITY;
  try {
    tf.tidy(() => {
      tf.matMul(a!, b!).dataSync(); // warm-up
    });
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      tf.tidy(() => {
        tf.matMul(a!, b!).dataSync();
      });
      best = Math.min(best, performance.now() - t0);
    }
  } finally {
    tf.dispose([a!, b!]);
  }
  return (2 * n ** 3) / (best / 1000) / 1e9;
}

/** Synthetic classification rows (random bytes, alternating labels): cost does not depend on the text. */
export function syntheticExamples(n: number, seqLen: number, vocab: number): EncodedExamples {
  let x = 12345;
  const ids = Int32Array.from({ length: n * seqLen }, () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x % (vocab - 1);
  });
  return { n, seqLen, ids, mask: new Float32Array(n * seqLen).fill(1), labels: Int32Array.from({ length: n }, (_, i) => i % 2) };
}

/** An adapter with small non-zero B, so ESSA has singular values to search. */
function benchAdapter(cfg: TrainBenchConfig): Map<string, HostTensor> {
  const adapter = initAdapter(cfg.model, cfg.lora);
  for (const [name, t] of adapter) if (name.endsWith('.lora_B.weight')) t.data.forEach((_, i) => (t.data[i] = Math.sin(i) * 1e-3));
  return adapter;
}

/** Mean ms between consecutive step callbacks after the warm-up steps. */
function stepTimer(warmup: number): { onStep: (s: StepInfo) => void; meanMs: () => number } {
  const stamps: number[] = [];
  let start = 0;
  return {
    onStep: (s) => {
      if (s.step === warmup) start = performance.now();
      if (s.step > warmup) stamps.push(performance.now());
    },
    meanMs: () => (stamps.length === 0 ? Number.NaN : (stamps[stamps.length - 1]! - start) / stamps.length),
  };
}

/** A loaded model, adapter and data for the timing functions; `dispose()` frees the model. */
export function benchSetup(cfg: TrainBenchConfig = DEFAULT_TRAIN_BENCH): {
  model: GPT2;
  adapter: Map<string, HostTensor>;
  data: EncodedExamples;
  dispose(): void;
} {
  const model = GPT2.init(cfg.model, 'bench');
  return { model, adapter: benchAdapter(cfg), data: syntheticExamples(cfg.batchSize * 4, cfg.seqLen, cfg.model.vocabSize), dispose: () => model.dispose() };
}

/** Mean ms of one classification forward pass on a batch. */
export function measureForwardMs(cfg: TrainBenchConfig, s: ReturnType<typeof benchSetup>): number {
  const batch: HostBatch = { size: cfg.batchSize, seqLen: cfg.seqLen, ids: s.data.ids.subarray(0, cfg.batchSize * cfg.seqLen), mask: s.data.mask.subarray(0, cfg.batchSize * cfg.seqLen), labels: s.data.labels.subarray(0, cfg.batchSize) };
  const tensors = toTf(s.adapter);
  const run = (): void => {
    tf.tidy(() => {
      classificationLoss(s.model, { config: cfg.lora, tensors }, batch).dataSync();
    });
  };
  try {
    for (let i = 0; i < cfg.warmup; i++) run();
    const t0 = performance.now();
    for (let i = 0; i < cfg.timed; i++) run();
    return (performance.now() - t0) / cfg.timed;
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

export async function measureBackpropMs(cfg: TrainBenchConfig, s: ReturnType<typeof benchSetup>): Promise<number> {
  const timer = stepTimer(cfg.warmup);
  await trainBackprop(s.model, cfg.lora, s.adapter, s.data, { steps: cfg.warmup + cfg.timed, batchSize: cfg.batchSize, lr: 1e-4, trainable: 'ffa', seed: 0, onStep: timer.onStep });
  return timer.meanMs();
}

export async function measureMezoMs(cfg: TrainBenchConfig, s: ReturnType<typeof benchSetup>): Promise<number> {
  const timer = stepTimer(cfg.warmup);
  await trainMezo(s.model, cfg.lora, s.adapter, s.data, { steps: cfg.warmup + cfg.timed, batchSize: cfg.batchSize, lr: 1e-4, eps: 1e-2, trainable: 'ffa', seed: 0, onStep: timer.onStep });
  return timer.meanMs();
}

export async function measureEssaMs(cfg: TrainBenchConfig, s: ReturnType<typeof benchSetup>): Promise<number> {
  const timer = stepTimer(cfg.warmup);
  await trainEssa(s.model, cfg.lora, s.adapter, s.data, { steps: cfg.warmup + cfg.timed, batchSize: cfg.batchSize, pairs: cfg.essaPairs, fitness: 'loss', seed: 0, onStep: timer.onStep });
  return timer.meanMs();
}

/** Child-process body: set up, run only `mode`, report peak RSS. */
async function childMain(mode: ChildMode, backend: BackendName, cfg: TrainBenchConfig): Promise<void> {
  await initBackend(backend);
  installWasmTransposedMatMul();
  const s = benchSetup(cfg);
  if (mode === 'forward') measureForwardMs(cfg, s);
  else if (mode === 'mezo') await measureMezoMs(cfg, s);
  else if (mode === 'essa') await measureEssaMs(cfg, s);
  else await measureBackpropMs(cfg, s);
  s.dispose();
  process.stdout.write(`${JSON.stringify({ mode, peak_rss_mb: process.resourceUsage().maxRSS / 1024 })}\n`);
}

/** Peak RSS (MiB) of a child `node dist/bench/train.js --child <mode>` on `backend`, running workload `cfg`. */
export function measureChildRssMb(mode: ChildMode, backend: BackendName, cfg: TrainBenchConfig = DEFAULT_TRAIN_BENCH): Promise<number> {
  const script = fileURLToPath(import.meta.url).replace(/\.ts$/, '.js').replace(`${'/'}src${'/'}`, `${'/'}dist${'/'}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, '--child', mode, '--backend', backend, '--config', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`bench child "${mode}" exited with ${code}; is dist/ built (npm run build)?`));
      try {
        resolve((JSON.parse(out.trim().split('\n').pop()!) as { peak_rss_mb: number }).peak_rss_mb);
      } catch (err) {
        reject(new Error(`bench child "${mode}" printed no result: ${out.slice(0, 200)}`, { cause: err }));
      }
    });
  });
}

/** The whole benchmark in this process (timings) plus one child per memory measurement. */
export async function runTrainBench(backend: BackendName, cfg: TrainBenchConfig = DEFAULT_TRAIN_BENCH): Promise<TrainBenchResult> {
  const matmul = measureMatmulGflops(cfg.matmulSize);
  const s = benchSetup(cfg);
  let forward: number;
  let backprop: number;
  let mezo: number;
  let essa: number;
  try {
    forward = measureForwardMs(cfg, s);
    backprop = await measureBackpropMs(cfg, s);
    mezo = await measureMezoMs(cfg, s);
    essa = await measureEssaMs(cfg, s);
  } finally {
    s.dispose();
  }
  const rss: number[] = [];
  for (const mode of CHILD_MODES) rss.push(await measureChildRssMb(mode, backend, cfg)); // sequential: they share the cores
  const params = modelParams(cfg.model);
  const tokens = cfg.batchSize * cfg.seqLen;
  const adapter = adapterInfo();
  return {
    backend,
    ...(adapter ? { adapter } : {}),
    params,
    tokens_per_step: tokens,
    matmul_gflops: matmul,
    backprop_gflops: (4 * params * tokens) / (backprop / 1000) / 1e9,
    forward_ms: forward,
    backprop_ms: backprop,
    mezo_ms: mezo,
    essa_ms: essa,
    essa_pairs: cfg.essaPairs,
    rss_forward_mb: rss[0]!,
    rss_mezo_mb: rss[1]!,
    rss_essa_mb: rss[2]!,
    rss_backprop_mb: rss[3]!,
  };
}

/** `lethe bench train [--backend NAME] [--json]`: the lead's bench command calls this with the remaining argv. */
export async function benchTrainMain(argv: string[]): Promise<number> {
  const at = argv.indexOf('--backend');
  const requested = at >= 0 && argv[at + 1] ? parseBackendName(argv[at + 1]!) : undefined;
  const choice = await initBackend(requested);
  installWasmTransposedMatMul();
  const result = await runTrainBench(choice.backend);
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    for (const [k, v] of Object.entries(result)) process.stdout.write(`${k.padEnd(18)} ${typeof v === 'number' ? +v.toPrecision(5) : v}\n`);
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const mode = args[args.indexOf('--child') + 1] as ChildMode;
  const backend = parseBackendName(args[args.indexOf('--backend') + 1] ?? 'wasm');
  if (args.includes('--child') && (CHILD_MODES as readonly string[]).includes(mode)) {
    const at = args.indexOf('--config');
    await childMain(mode, backend, at >= 0 ? (JSON.parse(args[at + 1]!) as TrainBenchConfig) : DEFAULT_TRAIN_BENCH);
  } else {
    process.exitCode = await benchTrainMain(args);
  }
}
