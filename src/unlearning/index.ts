/** Public API of O3 unlearning (ALGORITHMS.md §6). */
export { PackageError, UnlearningError } from './errors.js';
export type { PackageErrorCode, UnlearningErrorCode } from './errors.js';
export {
  DEFAULT_UNLEARNING_ADAPTER,
  TARGET_POLICIES,
  UNLEARNING_LORA,
  initUnlearningAdapter,
  replacementLabels,
  trainUnlearningAdapter,
} from './adapter.js';
export type { TargetPolicy, UnlearningAdapterConfig, UnlearningAdapterResult, UnlearningTrainMetrics, UtilityAdapter } from './adapter.js';
export { BaseFeatures, POOLINGS, extractFeatures, featureDim } from './features.js';
export type { InputFeatures, LayerFeatures, Pooling } from './features.js';
export { DEFAULT_DETECTOR, detectorLayers, fitDetector } from './detector.js';
export { DeviceDetector, detectorScores } from './device-detector.js';
export type { Detector, DetectorConfig, DetectorLayer, FittedDetector, GaussianStats, InputBlock, ScoredSet } from './detector.js';
export { ngramRows } from './ngrams.js';
export type { NgramSpec, SparseRows } from './ngrams.js';
export { DEFAULT_GATE, calibrateGate, gateWeight } from './gate.js';
export type { CalibrationSet, Gate, GateConfig } from './gate.js';
export { maxOverlap, orthogonalize, overlapRatio } from './orthogonality.js';
export type { OverlapReport } from './orthogonality.js';
export { UnlearningServing } from './serving.js';
export type { GateCombination, Prediction, ServedRequest } from './serving.js';
export { PACKAGE_FORMAT, decodeUnlearningPackage, encodeUnlearningPackage } from './package.js';
export type { DecodeOptions, UnlearningPackage } from './package.js';
export { unlearningMetrics } from './metrics.js';
export type { MetricSets, UnlearningMetrics } from './metrics.js';
export { DEFAULT_UNLEARNING_REQUEST, runUnlearningRequest } from './request.js';
export type { UnlearningRequestConfig } from './request.js';
export { auroc } from './stats.js';
