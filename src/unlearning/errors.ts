/** Errors raised by O3 unlearning: training the unlearning adapter, fitting the detector and gate, and packages. */

export type UnlearningErrorCode =
  | 'bad_option' // a config value is out of range or inconsistent
  | 'bad_data' // the forget (or out-of-distribution) data cannot be used: empty, labels out of range
  | 'bad_adapter' // an adapter (utility, prior unlearning adapter) does not fit the model or the LoRA config
  | 'no_room' // the earlier requests' A matrices already span a projection's input space
  | 'diverged'; // a loss became non-finite

/** Training or fitting failed; the message says what to change. */
export class UnlearningError extends Error {
  override name = 'UnlearningError';
  constructor(
    message: string,
    readonly code: UnlearningErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type PackageErrorCode =
  | 'bad_format' // not a safetensors blob, or its Lethe metadata is missing or unreadable
  | 'bad_version' // a package format this build does not read
  | 'bad_shape' // a tensor is missing, unexpected or mis-shaped
  | 'non_finite' // a tensor or parameter holds NaN or ±Infinity
  | 'not_orthogonal' // the adapter's A matrices overlap an earlier request's beyond the threshold
  | 'wrong_model'; // the package was built for another base model geometry

/** An unlearning package that must not be served; `code` names the check that failed. */
export class PackageError extends Error {
  override name = 'PackageError';
  constructor(
    message: string,
    readonly code: PackageErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
