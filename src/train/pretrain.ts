/**
 * Pretraining of the built-in tiny base model: a byte-level GPT-2 (TINY_CONFIG) trained from scratch as a language
 * model on public-domain prose (src/data pretrainCorpus: State of the Union addresses + Moby-Dick), so that LoRA
 * fine-tuning has a base that knows something about English text without downloading weights.
 *
 * The recipe is nanoGPT's shakespeare_char config scaled down: AdamW (β2 0.99, weight decay 0.1 on matrices only),
 * cosine schedule with linear warmup, global gradient clipping at 1, random windows of seqLen + 1 bytes from the
 * packed token stream (train.py `get_batch`). Every 20th document is held out for the perplexity printed at the end.
 *
 * `ensurePretrainedBase` is the cache in front of it: the first caller trains and saves
 * `<dataDir>/models/tiny-gpt2/{model.safetensors, config.json, manifest.json}`; later callers verify the recorded
 * SHA-256 and load. Training writes to a private temporary directory that is renamed into place, so concurrent
 * processes never observe a half-written model.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { packLanguageModeling, pretrainCorpus } from '../data/index.js';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.js';
import type { GPT2Config } from '../model/gpt2.js';
import { GPT2, TINY_CONFIG, initWeights, weightShapes } from '../model/gpt2.js';
import { byteTokenizer } from '../model/tokenizer.js';
import { shippedModelDir } from '../paths.js';
import type { HostTensor } from '../tensors/host.js';
import { PretrainedBaseError, TrainError } from './errors.js';
import type { PerplexityResult } from './evaluate.js';
import { perplexity } from './evaluate.js';
import { lossWindow } from './backprop.js';
import { languageModelLoss } from './loss.js';
import { AdamW, DEFAULT_ADAMW, clipByGlobalNorm } from './optimizer.js';
import { cosineLr, lrAt } from './schedule.js';
import type { StepInfo } from './types.js';

export interface PretrainConfig {
  readonly model: GPT2Config; // the architecture trained from scratch
  readonly steps: number; // optimisation steps; the default fits in ~5 min on 2 cores (wasm backend)
  readonly batchSize: number; // windows per step
  readonly seqLen: number; // tokens (bytes) per window; ≤ model.nPositions
  readonly lr: number; // peak learning rate (nanoGPT shakespeare_char: 1e-3 over 5000 steps; a short run takes 2e-3)
  readonly minLr: number; // end of the cosine decay: lr / 10, as nanoGPT
  readonly warmupSteps: number; // linear warmup
  readonly weightDecay: number; // AdamW decoupled decay, matrices only
  readonly beta2: number; // 0.99 rather than 0.999: few tokens per step, so the second moment must adapt faster
  readonly gradClip: number; // global L2 clip of each step's gradient
  readonly heldOutEvery: number; // document i is held out when i % heldOutEvery === heldOutEvery − 1
  readonly evalWindows: number; // held-out windows in the final perplexity (bounded, so the report stays cheap)
  readonly seed: string; // initial weights and window offsets
}

export const DEFAULT_PRETRAIN: PretrainConfig = Object.freeze({
  model: TINY_CONFIG,
  steps: 350, // ≈ 0.7 s of CPU per step on wasm (one core): ~4.5 min
  batchSize: 8,
  seqLen: 128,
  lr: 2e-3,
  minLr: 2e-4,
  warmupSteps: 20,
  weightDecay: 0.1,
  beta2: 0.99,
  gradClip: 1,
  heldOutEvery: 20,
  evalWindows: 64,
  seed: 'lethe-tiny-gpt2',
});

export interface PretrainProgress extends StepInfo {
  readonly tokensPerSecond: number;
  readonly elapsedSeconds: number;
}

export interface PretrainResult {
  readonly weights: Map<string, HostTensor>;
  /** Batch loss of every step (nats per token). */
  readonly losses: readonly number[];
  readonly lossBefore: number; // mean of the first max(1, ⌊steps/10⌋) batch losses
  readonly lossAfter: number; // mean of the last max(1, ⌊steps/10⌋)
  readonly seconds: number;
  readonly tokensPerSecond: number;
  readonly trainTokens: number;
  readonly heldOut: PerplexityResult;
}

/** The documents split into train and held-out by position (see PretrainConfig.heldOutEvery). */
export function splitDocuments(documents: readonly string[], every: number): { train: string[]; heldOut: string[] } {
  const train: string[] = [];
  const heldOut: string[] = [];
  documents.forEach((d, i) => (i % every === every - 1 ? heldOut : train).push(d));
  return { train, heldOut };
}

function validate(c: PretrainConfig): void {
  const bad = (msg: string): never => {
    throw new TrainError(`pretraining: ${msg}`, 'bad_option');
  };
  if (!Number.isInteger(c.steps) || c.steps < 1) bad(`steps must be a positive integer, got ${c.steps}`);
  if (!Number.isInteger(c.batchSize) || c.batchSize < 1) bad(`batchSize must be a positive integer, got ${c.batchSize}`);
  if (!Number.isInteger(c.seqLen) || c.seqLen < 1 || c.seqLen > c.model.nPositions) {
    bad(`seqLen must be an integer in 1..${c.model.nPositions} (the model's nPositions), got ${c.seqLen}`);
  }
  if (!(c.heldOutEvery >= 2)) bad(`heldOutEvery must be ≥ 2, got ${c.heldOutEvery}`);
  if (c.warmupSteps > c.steps) bad(`warmupSteps (${c.warmupSteps}) exceeds steps (${c.steps})`);
}

/** A [B, T + 1] batch of windows at random offsets of the stream (nanoGPT get_batch). */
function sampleWindows(stream: Int32Array, batch: number, window: number, rng: () => number): Int32Array {
  const out = new Int32Array(batch * window);
  const span = stream.length - window + 1;
  for (let b = 0; b < batch; b++) {
    const at = Math.floor(rng() * span);
    out.set(stream.subarray(at, at + window), b * window);
  }
  return out;
}

/**
 * Trains `config.model` from scratch on `documents` (byte tokenizer). All base weights train. Async only to yield
 * to the event loop between steps, so progress output flushes.
 */
export async function pretrain(
  documents: readonly string[],
  config: PretrainConfig = DEFAULT_PRETRAIN,
  onStep?: (p: PretrainProgress) => void,
): Promise<PretrainResult> {
  validate(config);
  const tokenizer = byteTokenizer();
  if (config.model.vocabSize !== tokenizer.vocabSize) {
    throw new TrainError(`pretraining uses the byte tokenizer (vocab ${tokenizer.vocabSize}); the model has vocab ${config.model.vocabSize}`, 'bad_option');
  }
  const split = splitDocuments(documents, config.heldOutEvery);
  const train = packLanguageModeling(split.train, tokenizer, config.seqLen);
  const heldOut = packLanguageModeling(split.heldOut, tokenizer, config.seqLen);
  const window = config.seqLen + 1;
  const rng = seedrandom(`${config.seed}:windows`);
  const schedule = cosineLr(config.lr, config.steps, { minLr: config.minLr, warmupSteps: config.warmupSteps });

  const model = new GPT2(config.model, initWeights(config.model, config.seed), { trainableBase: true });
  const names = [...weightShapes(config.model).keys()];
  const vars = new Map(model.variables().map((v, i) => [names[i]!, v] as const));
  const optimizer = new AdamW(vars, { ...DEFAULT_ADAMW, beta2: config.beta2, weightDecay: config.weightDecay });
  const losses: number[] = [];
  const started = performance.now();
  try {
    for (let step = 0; step < config.steps; step++) {
      const batch = sampleWindows(train, config.batchSize, window, rng);
      const lr = lrAt(schedule, step);
      const { value, grads } = tf.variableGrads(
        () => languageModelLoss(model, tf.tensor2d(batch, [config.batchSize, window], 'int32')),
        [...vars.values()],
      );
      const loss = value.dataSync()[0]!;
      value.dispose();
      const byName = new Map([...vars].map(([name, v]) => [name, grads[v.name]!] as const));
      const clipped = clipByGlobalNorm(byName, config.gradClip).grads;
      for (const g of byName.values()) g.dispose();
      if (!Number.isFinite(loss)) {
        for (const g of clipped.values()) g.dispose();
        throw new TrainError(`pretraining loss became ${loss} at step ${step + 1}; lower the learning rate`, 'diverged');
      }
      optimizer.step(clipped, lr);
      for (const g of clipped.values()) g.dispose();
      losses.push(loss);
      const elapsed = (performance.now() - started) / 1000;
      onStep?.({
        step: step + 1,
        steps: config.steps,
        loss,
        lr,
        batchSize: config.batchSize,
        tokensPerSecond: ((step + 1) * config.batchSize * config.seqLen) / elapsed,
        elapsedSeconds: elapsed,
      });
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const seconds = (performance.now() - started) / 1000;
    const evalTokens = heldOut.subarray(0, Math.min(heldOut.length, config.evalWindows * window));
    const held = perplexity(model, evalTokens, config.seqLen);
    const { before, after } = lossWindow(losses);
    return {
      weights: model.hostWeights(),
      losses,
      lossBefore: before,
      lossAfter: after,
      seconds,
      tokensPerSecond: (config.steps * config.batchSize * config.seqLen) / seconds,
      trainTokens: train.length,
      heldOut: held,
    };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the on-disk cache

const MANIFEST_FILE = 'manifest.json';
const WEIGHTS_FILE = 'model.safetensors';
export const TINY_BASE_NAME = 'tiny-gpt2';

/** What manifest.json records about a pretrained base. */
export interface BaseManifest {
  readonly format: 1;
  readonly name: string;
  readonly sha256: string; // of model.safetensors
  readonly corpus: string;
  readonly steps: number;
  readonly lossAfter: number;
  readonly heldOutPerplexity: number;
  readonly tokensPerSecond: number;
  readonly seconds: number;
}

export interface PretrainedBase {
  readonly dir: string;
  readonly config: GPT2Config;
  readonly weights: Map<string, HostTensor>;
  readonly manifest: BaseManifest;
  /** True when this call trained the model (false: loaded from disk). */
  readonly trained: boolean;
  /** The training run, when `trained`. */
  readonly result?: PretrainResult;
}

export interface EnsureBaseOptions {
  /** Overrides of DEFAULT_PRETRAIN (steps, a smaller model in tests, ...). */
  readonly config?: Partial<PretrainConfig>;
  /** Retrain even when a valid model is stored. */
  readonly force?: boolean;
  /** Documents to train on; default pretrainCorpus(). */
  readonly corpus?: { readonly name: string; readonly documents: readonly string[] };
  readonly onStep?: (p: PretrainProgress) => void;
}

export function baseDir(dataDir: string): string {
  return join(dataDir, 'models', TINY_BASE_NAME);
}

async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

async function readManifest(dir: string): Promise<BaseManifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return JSON.parse(text) as BaseManifest;
}

/**
 * Loads the stored base at `dir` after checking model.safetensors against the manifest's SHA-256 and the config
 * against `expected`. Throws PretrainedBaseError (code checksum_mismatch, stale or missing) with the fix.
 */
export async function loadVerifiedBase(dir: string, expected?: GPT2Config): Promise<Omit<PretrainedBase, 'trained'>> {
  const manifest = await readManifest(dir);
  if (!manifest) throw new PretrainedBaseError(`no pretrained base at ${dir} (no ${MANIFEST_FILE}); run 'lethe pretrain'`, 'missing');
  let actual: string;
  try {
    actual = await sha256File(join(dir, WEIGHTS_FILE));
  } catch (err) {
    throw new PretrainedBaseError(`cannot read ${join(dir, WEIGHTS_FILE)}: ${(err as Error).message}; run 'lethe pretrain --force'`, 'missing', { cause: err });
  }
  if (actual !== manifest.sha256) {
    throw new PretrainedBaseError(
      `${join(dir, WEIGHTS_FILE)} is corrupted or was modified: SHA-256 ${actual.slice(0, 16)}… but the manifest records ` +
        `${manifest.sha256.slice(0, 16)}…; run 'lethe pretrain --force' to retrain it`,
      'checksum_mismatch',
    );
  }
  const { config, weights } = await loadCheckpoint(dir);
  if (expected && JSON.stringify(config) !== JSON.stringify(expected)) {
    throw new PretrainedBaseError(
      `the stored base at ${dir} has config ${JSON.stringify(config)}, but ${JSON.stringify(expected)} is expected; ` +
        "run 'lethe pretrain --force' to retrain it",
      'stale',
    );
  }
  return { dir, config, weights, manifest };
}

/**
 * The pretrained tiny base under `dataDir`: loaded and verified when present, otherwise (or with `force`) trained,
 * saved and recorded. A corrupted stored model is an error (never silently replaced); `force` retrains it.
 */
export async function ensurePretrainedBase(dataDir: string, opts: EnsureBaseOptions = {}): Promise<PretrainedBase> {
  const steps = opts.config?.steps ?? DEFAULT_PRETRAIN.steps;
  // A shorter run keeps a proportionate warmup unless one is given.
  const warmupSteps = Math.min(DEFAULT_PRETRAIN.warmupSteps, Math.ceil(steps / 10));
  const config: PretrainConfig = Object.freeze({ ...DEFAULT_PRETRAIN, warmupSteps, ...opts.config });
  const dir = baseDir(dataDir);
  if (!opts.force && (await readManifest(dir))) return { ...(await loadVerifiedBase(dir, config.model)), trained: false };
  // The default base ships with the package (trained by `lethe pretrain` with the settings in its manifest), so a
  // fresh machine needs no pretraining; a different config or corpus, or --force, trains one under the data dir.
  const shipped = shippedModelDir(TINY_BASE_NAME);
  if (!opts.force && !opts.config && !opts.corpus && (await readManifest(shipped))) {
    return { ...(await loadVerifiedBase(shipped, config.model)), trained: false };
  }

  const corpus = opts.corpus ?? pretrainCorpus();
  const result = await pretrain(corpus.documents, config, opts.onStep);
  const tmp = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  const { sha256 } = await saveCheckpoint(tmp, config.model, result.weights, { 'lethe.corpus': corpus.name });
  const manifest: BaseManifest = {
    format: 1,
    name: TINY_BASE_NAME,
    sha256,
    corpus: corpus.name,
    steps: config.steps,
    lossAfter: result.lossAfter,
    heldOutPerplexity: result.heldOut.perplexity,
    tokensPerSecond: result.tokensPerSecond,
    seconds: result.seconds,
  };
  await writeFile(join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  // Replace: a forced retrain, or a directory left without a manifest (an interrupted or foreign write).
  if (opts.force || !(await readManifest(dir))) await rm(dir, { recursive: true, force: true });
  try {
    await rename(tmp, dir);
  } catch (err) {
    // Another process finished first: keep its model, discard ours.
    await rm(tmp, { recursive: true, force: true });
    if (!(await readManifest(dir))) throw err;
    return { ...(await loadVerifiedBase(dir, config.model)), trained: false };
  }
  return { dir, config: config.model, weights: result.weights, manifest, trained: true, result };
}
