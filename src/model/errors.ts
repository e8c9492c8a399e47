/** Errors raised by the model core: configs, base weights, adapters and checkpoint files. */

/** An invalid GPT2Config or LoraConfig (non-positive sizes, nEmbd not divisible by nHead, unknown target). */
export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
  readonly code = 'bad_config';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export type WeightsErrorCode = 'missing_weight' | 'unexpected_weight' | 'weight_shape';

/** Base weights that do not match the config: lists every missing, unexpected or mis-shaped tensor at once. */
export class WeightsError extends Error {
  override name = 'WeightsError';
  constructor(
    message: string,
    readonly code: WeightsErrorCode,
    readonly names: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type AdapterErrorCode = 'missing_adapter_tensor' | 'adapter_shape' | 'bad_adapter_config' | 'no_head';

/** A LoRA adapter that does not fit the model or its LoraConfig, or a PEFT adapter directory Lethe cannot read. */
export class AdapterError extends Error {
  override name = 'AdapterError';
  constructor(
    message: string,
    readonly code: AdapterErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Input ids or masks with the wrong rank, length or range. */
export class ModelInputError extends Error {
  override name = 'ModelInputError';
  readonly code = 'bad_input';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export type CheckpointErrorCode = 'missing_file' | 'bad_config_json' | 'io';

/** A checkpoint directory that cannot be read or written; the underlying error is the `cause`. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
  constructor(
    message: string,
    readonly code: CheckpointErrorCode,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A call on a GPT2 after dispose(). */
export class ModelDisposedError extends Error {
  override name = 'ModelDisposedError';
  readonly code = 'disposed';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
