/**
 * One O3 unlearning request end to end, as a client holding the forget data runs it (ALGORITHMS.md §6): train the
 * unlearning adapter, fit the detector on the frozen base's features, calibrate the gate, and return the package that
 * travels to the coordinator. Everything is deterministic given the configs' seeds on a given backend.
 */
import type { GPT2 } from '../model/gpt2.js';
import type { TensorMap } from '../tensors/host.js';
import type { TrainerData } from '../train/types.js';
import type { UnlearningAdapterConfig, UtilityAdapter } from './adapter.js';
import { DEFAULT_UNLEARNING_ADAPTER, trainUnlearningAdapter } from './adapter.js';
import type { DetectorConfig } from './detector.js';
import { DEFAULT_DETECTOR, detectorLayers, fitDetector } from './detector.js';
import { extractFeatures } from './features.js';
import type { GateConfig } from './gate.js';
import { DEFAULT_GATE, calibrateGate } from './gate.js';
import type { UnlearningPackage } from './package.js';
import { auroc } from './stats.js';

export interface UnlearningRequestConfig {
  readonly adapter: UnlearningAdapterConfig;
  readonly detector: DetectorConfig;
  readonly gate: GateConfig;
  readonly featureBatchSize: number; // examples per base forward when extracting detector features
}

export const DEFAULT_UNLEARNING_REQUEST: UnlearningRequestConfig = Object.freeze({
  adapter: DEFAULT_UNLEARNING_ADAPTER,
  detector: DEFAULT_DETECTOR,
  gate: DEFAULT_GATE,
  featureBatchSize: 32,
});

/**
 * Request t = priors.length + 1: forget `forget` (D_t), calibrating the gate against `generic` (inputs the adapter
 * must leave alone: other local data or public text). `priors` are the earlier requests' adapters, in order.
 * The package's metrics are the training ones plus the cross-fitted calibration AUROC.
 */
export async function runUnlearningRequest(
  model: GPT2,
  utility: UtilityAdapter,
  forget: TrainerData,
  generic: TrainerData,
  priors: readonly TensorMap[],
  config: UnlearningRequestConfig = DEFAULT_UNLEARNING_REQUEST,
): Promise<UnlearningPackage> {
  const trained = await trainUnlearningAdapter(model, utility, forget, priors, config.adapter);
  const layers = detectorLayers(config.detector, model.config.nLayer);
  const inFeats = extractFeatures(model, forget, layers, config.detector.pooling, config.featureBatchSize);
  const outFeats = extractFeatures(model, generic, layers, config.detector.pooling, config.featureBatchSize);
  const fitted = fitDetector(inFeats, outFeats, config.detector);
  const gate = calibrateGate(fitted.heldIn, fitted.out, config.gate);
  return {
    index: trained.index,
    lora: trained.lora,
    adapter: trained.adapter,
    detector: fitted.detector,
    gate,
    metrics: { ...trained.metrics, calibration_auroc: auroc(fitted.heldIn.scores, fitted.out.scores) },
  };
}
