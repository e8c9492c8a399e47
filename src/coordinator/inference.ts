/**
 * The coordinator's use of the model itself: evaluating each new global adapter on the run's held-out eval split,
 * and InferenceService.Predict (inference.proto). Base models load lazily (the built-in tiny one through
 * ensurePretrainedBase in the data directory) and stay cached; forward passes run inside tf.tidy.
 *
 * Extension point for O3 unlearning (ALGORITHMS.md §6): `GateProvider` supplies the gated unlearning adapters of a
 * run (unlearning.ts); without one Predict serves base + the utility adapter and returns no gates.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/backend.js';
import { loadDataset, trainTestSplit } from '../data/index.js';
import { encodeExamples, type EncodedExamples } from '../data/encode.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { GPT2 } from '../model/gpt2.js';
import { toTf, type LoraParams } from '../model/lora.js';
import { tokenizerFor } from '../model/tokenizer.js';
import type { TensorMap } from '../tensors/host.js';
import { evaluate } from '../train/evaluate.js';
import { ensurePretrainedBase } from '../train/pretrain.js';
import { hexDigest } from '../wire/codec.js';
import type { GateWeight, PredictRequest, PredictResponse } from '../wire/admin-messages.js';
import type { MessageInput } from '../wire/messages.js';
import type { CoordinatorCore } from './core.js';
import { InvalidRequestError, NotFoundError } from './errors.js';
import { BUILTIN_TINY, unpackTensors } from './layout.js';
import type { RoundEvaluator } from './round-driver.js';
import type { RunContext, RunRegistry } from './runs.js';

/** Unlearning adapters to apply at inference, each with its per-input gate. */
export interface GateProvider {
  /** Called before gates() for a run, outside any tidy: loads or rebuilds what gates() needs. */
  prepare?(ctx: RunContext, model: GPT2, utility: TensorMap): Promise<void>;
  /** Frees device memory; called when the ModelService is disposed. */
  dispose?(): void;
  gates(ctx: RunContext, ids: tf.Tensor2D, mask: tf.Tensor2D): { readonly adapters: readonly LoraParams[]; readonly explain: readonly GateWeight[] };
}

export class ModelService implements RoundEvaluator {
  private readonly models = new Map<string, Promise<GPT2>>();
  private readonly evalSets = new Map<string, Promise<EncodedExamples>>();
  private backend: Promise<unknown> | undefined;

  constructor(
    private readonly core: CoordinatorCore,
    private readonly gates?: GateProvider,
  ) {}

  private model(baseModel: string): Promise<GPT2> {
    let m = this.models.get(baseModel);
    if (!m) {
      m = (async () => {
        this.backend ??= initBackend(this.core.config.backend);
        await this.backend;
        if (baseModel === BUILTIN_TINY) {
          const base = await ensurePretrainedBase(this.core.config.dataDir);
          return new GPT2(base.config, base.weights);
        }
        const { config, weights } = await loadCheckpoint(baseModel);
        return new GPT2(config, weights);
      })();
      this.models.set(baseModel, m);
      m.catch(() => this.models.delete(baseModel));
    }
    return m;
  }

  /** The run's eval split: trainTestSplit(eval_data, test fraction, run seed).test, at most evalMaxExamples rows. */
  evalSet(ctx: RunContext): Promise<EncodedExamples> {
    const { config } = ctx;
    const key = JSON.stringify([config.evalData, config.seed, config.seqLen, ctx.layout.model.vocabSize]);
    let set = this.evalSets.get(key);
    if (!set) {
      set = (async () => {
        const ds = await loadDataset(config.evalData, { labels: config.labels });
        const { test } = trainTestSplit(ds, { testFraction: this.core.config.evalTestFraction, seed: config.seed });
        const examples = test.examples.slice(0, this.core.config.evalMaxExamples);
        return encodeExamples(examples, tokenizerFor(ctx.layout.model), Math.min(config.seqLen, ctx.layout.model.nPositions));
      })();
      this.evalSets.set(key, set);
      set.catch(() => this.evalSets.delete(key));
    }
    return set;
  }

  async evaluate(ctx: RunContext, adapter: TensorMap): Promise<Readonly<Record<string, number>> | undefined> {
    if (ctx.config.evalData === '') return undefined;
    try {
      const [model, data] = await Promise.all([this.model(ctx.config.baseModel), this.evalSet(ctx)]);
      const result = evaluate(model, ctx.layout.lora, adapter, data);
      return { eval_accuracy: result.accuracy, eval_loss: result.loss, eval_examples: result.n };
    } catch (err) {
      // Evaluation informs; it must not stop training.
      this.core.config.log(`run ${ctx.id}: evaluation failed: ${(err as Error).message}`);
      return undefined;
    }
  }

  async predict(runs: RunRegistry, request: PredictRequest): Promise<MessageInput<PredictResponse>> {
    if (request.runId === '') throw new InvalidRequestError('run_id is required');
    const ctx = await runs.context(request.runId);
    const run = (await this.core.store.runs.get(ctx.id))!;
    const sha = request.adapterSha256.length === 0 ? run.globalAdapterSha : hexDigest(request.adapterSha256);
    if (sha === null || !(await this.isRunAdapter(ctx.id, sha, run.globalAdapterSha))) {
      throw new NotFoundError(`adapter ${sha ?? '(none)'} is not an adapter of run ${ctx.id}`);
    }
    const bytes = await this.core.store.blobs.get(sha);
    if (!bytes) throw new NotFoundError(`adapter ${sha} is not stored`);
    const adapter = unpackTensors(bytes, ctx.layout.adapter);
    const model = await this.model(ctx.config.baseModel);
    await this.gates?.prepare?.(ctx, model, adapter);
    const tokenizer = tokenizerFor(ctx.layout.model);
    const maxLen = Math.min(ctx.config.seqLen, ctx.layout.model.nPositions);
    let tokens: number[];
    if (request.input === 'tokenIds') {
      tokens = request.tokenIds?.ids ?? [];
      const bad = tokens.find((t) => t >= tokenizer.vocabSize);
      if (bad !== undefined) throw new InvalidRequestError(`token id ${bad} is outside the model's vocabulary of ${tokenizer.vocabSize}`);
    } else {
      tokens = tokenizer.encode(request.text ?? '', maxLen + 1);
    }
    const truncated = tokens.length > maxLen;
    const ids = tokens.slice(0, maxLen);
    if (ids.length === 0) ids.push(tokenizer.eotId);
    // The classifier picks the last real token with a one-hot over positions, which needs at least two positions:
    // a one-token input gets one masked pad after it (causal attention: the pad cannot change the real token).
    const width = Math.max(2, ids.length);
    const tensors = toTf(adapter);
    try {
      let explain: readonly GateWeight[] = [];
      const probsT = tf.tidy(() => {
        const idsT = tf.tensor2d([...ids, ...Array(width - ids.length).fill(tokenizer.padId)], [1, width], 'int32');
        const maskT = tf.tensor2d([...Array(ids.length).fill(1), ...Array(width - ids.length).fill(0)], [1, width]);
        const gated = this.gates?.gates(ctx, idsT, maskT);
        explain = gated?.explain ?? [];
        const logits = model.classify(idsT, maskT, [{ config: ctx.layout.lora, tensors }, ...(gated?.adapters ?? [])]);
        return tf.softmax(logits);
      });
      const probs = Array.from(probsT.dataSync());
      probsT.dispose();
      const predicted = probs.reduce((best, p, i) => (p > probs[best]! ? i : best), 0);
      return {
        probabilities: probs.map((probability, index) => ({ label: ctx.config.labels[index] ?? String(index), index, probability })),
        predictedIndex: predicted,
        predictedLabel: ctx.config.labels[predicted] ?? String(predicted),
        adapterSha256: Buffer.from(sha, 'hex'),
        numTokens: ids.length,
        truncated,
        gates: request.explain ? [...explain] : [],
      };
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }

  /** True for the run's current adapter and any adapter one of its rounds produced or started from. */
  private async isRunAdapter(runId: string, sha: string, current: string | null): Promise<boolean> {
    if (sha === current) return true;
    const rounds = await this.core.store.rounds.list(runId);
    return rounds.some((r) => r.adapterShaAfter === sha || r.adapterShaBefore === sha);
  }

  dispose(): void {
    this.gates?.dispose?.();
    for (const m of this.models.values()) void m.then((model) => model.dispose(), () => undefined);
    this.models.clear();
  }
}
