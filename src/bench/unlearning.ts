/**
 * O3 unlearning at benchmark scale (ALGORITHMS.md §6) on the real task: the pretrained tiny base, a utility adapter
 * trained centrally on SpamAssassin, then one whole mail group forgotten.
 *
 * Protocol: a stratified train/test split of SpamAssassin; the utility adapter (LoRA on all projections + head) trains
 * on the train split, forget group included; D_t = the forget group's train-split mails; the gate is calibrated
 * against a slice of the other groups' train-split mails (the client's other data); the metrics use D_t itself, the
 * forget group's test-split mails, and the other groups' test-split mails (retained). Targets: forget accuracy within
 * 5 points of chance, retained accuracy drop ≤ 2 points, detector AUROC ≥ 0.95, gate overhead ≤ 0.10.
 *
 * `auroc_by_group`: the same detector protocol (fit on the group's train mails against a generic slice of the others
 * and the request's public-text snippets, score its test mails against the others' test mails) for every SpamAssassin
 * group, so the forget group's number reads against all of them; detectors only, no adapter is trained for these.
 */
import { encodeExamples, spamAssassin, spread, trainTestSplit } from '../data/index.js';
import type { EncodedExamples, Example, LabeledDataset } from '../data/index.js';
import { GPT2 } from '../model/gpt2.js';
import type { LoraConfig } from '../model/lora.js';
import { LORA_TARGETS, initAdapter } from '../model/lora.js';
import { byteTokenizer } from '../model/tokenizer.js';
import { trainBackprop } from '../train/backprop.js';
import { evaluate } from '../train/evaluate.js';
import { ensurePretrainedBase } from '../train/pretrain.js';
import type { UnlearningRequestConfig } from '../unlearning/request.js';
import { DEFAULT_UNLEARNING_REQUEST, genericFeatures, runUnlearningRequest } from '../unlearning/request.js';
import { unlearningMetrics } from '../unlearning/metrics.js';
import { UnlearningServing } from '../unlearning/serving.js';
import { detectorLayers, fitDetector, type DetectorConfig } from '../unlearning/detector.js';
import { detectorScores } from '../unlearning/device-detector.js';
import { extractFeatures } from '../unlearning/features.js';
import { auroc } from '../unlearning/stats.js';

export interface UnlearningBenchOptions {
  readonly dataDir: string; // where ensurePretrainedBase keeps (or trains) the tiny base
  readonly forgetGroup: string; // SpamAssassin group to forget
  readonly seqLen: number; // tokens (bytes) per mail
  readonly utilityExamples: number; // train-split mails the utility adapter trains on (forget group included)
  readonly utilitySteps: number;
  readonly utilityLr: number;
  readonly genericExamples: number; // other-group mails the gate is calibrated against
  readonly retainExamples: number; // held-out retained mails measured
  readonly request: UnlearningRequestConfig;
  readonly seed: string; // split and sampling
  readonly onProgress?: (line: string) => void;
}

export const DEFAULT_UNLEARNING_BENCH: Omit<UnlearningBenchOptions, 'dataDir'> = Object.freeze({
  forgetGroup: 'hard-ham-1',
  seqLen: 128,
  utilityExamples: 1600,
  utilitySteps: 300,
  utilityLr: 2e-3,
  genericExamples: 400,
  retainExamples: 600,
  request: DEFAULT_UNLEARNING_REQUEST,
  seed: 'lethe-unlearning-bench',
});

export interface UnlearningBenchResult {
  readonly forget_acc: number;
  readonly forget_heldout_acc: number;
  readonly chance_acc: number;
  readonly retain_acc_before: number;
  readonly retain_acc_after: number;
  readonly auroc: number;
  readonly gate_overhead: number;
  readonly forget_acc_before: number; // utility adapter alone on D_t
  readonly forget_examples: number;
  readonly utility_seconds: number;
  readonly unlearning_seconds: number;
  readonly auroc_by_group: Readonly<Record<string, number>>; // detector AUROC per SpamAssassin group (header)
}

/** Held-out detector AUROC of every group of the corpus, each forgotten in turn (see the module header). */
function aurocByGroup(
  model: GPT2,
  splits: { readonly train: LabeledDataset; readonly test: LabeledDataset },
  encode: (examples: readonly Example[]) => EncodedExamples,
  config: DetectorConfig,
  o: UnlearningBenchOptions,
): Record<string, number> {
  const layers = detectorLayers(config, model.config.nLayer);
  const features = (examples: readonly Example[]) => extractFeatures(model, encode(examples), layers, config.pooling, 32, config.input);
  const groups = [...new Set(splits.train.examples.map((e) => e.meta.group!))].sort();
  return Object.fromEntries(
    groups.map((g) => {
      const inGroup = (e: Example): boolean => e.meta.group === g;
      const fitted = fitDetector(
        features(splits.train.examples.filter(inGroup)),
        genericFeatures(model, encode(spread([...splits.train.examples.filter((e) => !inGroup(e))].reverse(), o.genericExamples)), layers, o.request),
        config,
      );
      const positives = detectorScores(fitted.detector, features(splits.test.examples.filter(inGroup))).scores;
      const negatives = detectorScores(fitted.detector, features(spread(splits.test.examples.filter((e) => !inGroup(e)), o.retainExamples))).scores;
      return [g, auroc(positives, negatives)];
    }),
  );
}

export async function benchUnlearning(opts: Partial<UnlearningBenchOptions> & { readonly dataDir: string }): Promise<UnlearningBenchResult> {
  const o: UnlearningBenchOptions = { ...DEFAULT_UNLEARNING_BENCH, ...opts };
  const log = o.onProgress ?? ((): void => {});
  const base = await ensurePretrainedBase(o.dataDir);
  const model = new GPT2(base.config, base.weights);
  try {
    const seqLen = Math.min(o.seqLen, base.config.nPositions);
    const tokenizer = byteTokenizer();
    const encode = (examples: readonly Example[]) => encodeExamples(examples, tokenizer, seqLen);
    const { train, test } = trainTestSplit(spamAssassin(), { testFraction: 0.2, seed: o.seed });
    const inGroup = (e: Example): boolean => e.meta.group === o.forgetGroup;
    const forgetTrain = train.examples.filter(inGroup);
    if (forgetTrain.length === 0) throw new RangeError(`no SpamAssassin group "${o.forgetGroup}"`);
    const others = train.examples.filter((e) => !inGroup(e));

    const lora: LoraConfig = Object.freeze({ r: 8, alpha: 16, targets: LORA_TARGETS, numLabels: 2, seed: o.seed });
    const utilityData = encode(spread(train.examples, o.utilityExamples));
    let started = performance.now();
    const trained = await trainBackprop(model, lora, initAdapter(base.config, lora), utilityData, {
      steps: o.utilitySteps,
      batchSize: 16,
      lr: o.utilityLr,
      trainable: 'lora',
      schedule: 'cosine',
      seed: 1,
      onStep: (s) => {
        if (s.step % 50 === 0) log(`utility step ${s.step}/${s.steps} loss ${s.loss.toFixed(3)}`);
      },
    });
    const utilitySeconds = (performance.now() - started) / 1000;
    const utility = { lora, adapter: trained.adapter };

    const forget = encode(forgetTrain);
    // The generic slice is spread over the other groups' train mails but avoids the utility's exact training rows
    // only by chance: the client's other data, as in deployment.
    const generic = encode(spread([...others].reverse(), o.genericExamples));
    started = performance.now();
    const pkg = await runUnlearningRequest(model, utility, forget, generic, [], o.request);
    const unlearningSeconds = (performance.now() - started) / 1000;
    log(`unlearning: ${unlearningSeconds.toFixed(1)} s, ${JSON.stringify(pkg.metrics)}`);

    const serving = new UnlearningServing(model, utility, [{ id: 'bench', lora: pkg.lora, adapter: pkg.adapter, detector: pkg.detector, gate: pkg.gate }]);
    try {
      const sets = {
        forget,
        forgetHeldOut: encode(test.examples.filter(inGroup)),
        retain: encode(spread(test.examples.filter((e) => !inGroup(e)), o.retainExamples)),
      };
      const m = unlearningMetrics(model, utility, serving, pkg.detector, sets);
      const forgetBefore = evaluate(model, lora, utility.adapter, forget).accuracy;
      const byGroup = aurocByGroup(model, { train, test }, encode, o.request.detector, o);
      log(`detector AUROC by group: ${JSON.stringify(byGroup)}`);
      return {
        ...m,
        forget_acc_before: forgetBefore,
        forget_examples: forget.n,
        utility_seconds: utilitySeconds,
        unlearning_seconds: unlearningSeconds,
        auroc_by_group: byGroup,
      };
    } finally {
      serving.dispose();
    }
  } finally {
    model.dispose();
  }
}
