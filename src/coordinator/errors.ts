/** Errors of the coordinator: each has a stable `code` that src/wire/status.ts maps to a gRPC status. */
export class CoordinatorError extends Error {
  override name = 'CoordinatorError';
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A run config that cannot be accepted; the message names the field. */
export class ConfigError extends CoordinatorError {
  override name = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'invalid_config', options);
  }
}
