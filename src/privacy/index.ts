/**
 * The privacy package: RDP accounting of the Poisson-subsampled Gaussian mechanism (rdp, accountant, calibrate),
 * noise and clipping (gaussian, clip), central DP as aggregation wrappers (central), sample-level DP helpers for the
 * trainers (sample-level), and the budget-enforcing ledger (ledger). Nothing here does I/O except drawing randomness
 * from node:crypto in gaussianNoise.
 */
export * from './errors.js';
export {
  DEFAULT_ORDERS,
  type Conversion,
  type EpsilonResult,
  computeRdp,
  conversionOffset,
  epsilonFromRdp,
  epsilonOf,
  rdpOfStep,
} from './rdp.js';
export { type AccountantState, type HistoryEntry, RDP_MECHANISM, RdpAccountant, type RdpAccountantConfig, composeRdp } from './accountant.js';
export { type CalibrationResult, sigmaForEpsilon } from './calibrate.js';
export { type NoiseSource, gaussianNoise } from './gaussian.js';
export { type ClipResult, clipTensors, clipVector, localDp } from './clip.js';
export {
  CLIP_INDICATOR_METRIC,
  CLIP_NORM_INSTRUCTION,
  DpAdaptiveClipping,
  type DpAdaptiveClippingConfig,
  type DpDependencies,
  DpFixedClipping,
  type DpFixedClippingConfig,
} from './central.js';
export { dpZeroScalar, privatizeGradients } from './sample-level.js';
export {
  InMemoryLedgerStore,
  type LedgerEntry,
  type LedgerStore,
  type PlannedRelease,
  type PrivacyBudget,
  PrivacyLedger,
  type PrivacyLedgerConfig,
  type ReleaseKind,
  type SpentReport,
} from './ledger.js';
