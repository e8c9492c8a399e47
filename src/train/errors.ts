/** Errors raised by the trainers, evaluation and pretraining. Each carries a `code` and may chain a `cause`. */

export type TrainErrorCode =
  | 'bad_option' // an option is out of range or inconsistent
  | 'bad_data' // the data cannot be trained on (empty, wrong shape, labels out of range)
  | 'bad_adapter' // the start adapter does not match the model / LoRA config
  | 'diverged'; // a loss or parameter became non-finite

export class TrainError extends Error {
  override name = 'TrainError';
  constructor(
    message: string,
    readonly code: TrainErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type CheckpointErrorCode =
  | 'checksum_mismatch' // a file on disk does not match the checksum recorded when it was written
  | 'missing' // an expected file is absent
  | 'stale'; // the stored model was trained for another configuration

/** A stored base model is unusable; the message says how to recover (e.g. `lethe pretrain --force`). */
export class PretrainedBaseError extends Error {
  override name = 'PretrainedBaseError';
  constructor(
    message: string,
    readonly code: CheckpointErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
