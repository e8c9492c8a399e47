/** Errors raised by the dense linear algebra in src/linalg. */
export class LinalgError extends Error {
  override name = 'LinalgError';
  constructor(
    message: string,
    readonly code: 'bad_shape' | 'non_finite' | 'no_convergence',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
