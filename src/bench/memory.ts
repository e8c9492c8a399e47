/**
 * `lethe bench memory`: what each local training mode costs in memory, as peak RSS of a SEPARATE client process that
 * runs only that mode (src/bench/train.ts measureChildRssMb: `node dist/bench/train.js --child <mode>`), on the same
 * model and batch (the train benchmark's workload: GPT2_SMALL_WIDTH, seq 128, batch 8, LoRA r 8 on c_attn + c_proj,
 * FFA). Children run one after the other so they never compete for memory.
 *
 *   rss_forward_mb    inference only: the floor any trainer pays (weights, runtime, one batch's activations)
 *   rss_mezo_mb       MeZO: two forward passes per step, host θ and one perturbed copy, no activations kept
 *   rss_essa_mb       ESSA: one generation of antithetic members, each a forward pass, plus the SVD factors
 *   rss_backprop_mb   LoRA backprop with AdamW: activations kept for the backward pass
 * and each over rss_forward_mb (targets: MeZO and ESSA ≤ 1.15 × forward).
 *
 * Needs the compiled children in dist/ (`npx tsc -p .`).
 */
import type { BackendName } from '../backend/backend.js';
import { DEFAULT_TRAIN_BENCH, measureChildRssMb, type TrainBenchConfig } from './train.js';

export interface MemoryBenchResult {
  readonly backend: string;
  readonly model: string;
  readonly rss_forward_mb: number;
  readonly rss_mezo_mb: number;
  readonly rss_essa_mb: number;
  readonly rss_backprop_mb: number;
  readonly mezo_over_forward: number;
  readonly essa_over_forward: number;
  readonly backprop_over_forward: number;
}

export async function benchMemory(backend: BackendName, cfg: TrainBenchConfig = DEFAULT_TRAIN_BENCH): Promise<MemoryBenchResult> {
  const forward = await measureChildRssMb('forward', backend, cfg);
  const mezo = await measureChildRssMb('mezo', backend, cfg);
  const essa = await measureChildRssMb('essa', backend, cfg);
  const backprop = await measureChildRssMb('backprop', backend, cfg);
  const { nEmbd, nLayer } = cfg.model;
  return {
    backend,
    model: `gpt2 d${nEmbd} L${nLayer}, seq ${cfg.seqLen}, batch ${cfg.batchSize}, LoRA r${cfg.lora.r}`,
    rss_forward_mb: forward,
    rss_mezo_mb: mezo,
    rss_essa_mb: essa,
    rss_backprop_mb: backprop,
    mezo_over_forward: mezo / forward,
    essa_over_forward: essa / forward,
    backprop_over_forward: backprop / forward,
  };
}
