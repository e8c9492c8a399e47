/** Errors raised while choosing or starting a TensorFlow.js backend. */
export class BackendError extends Error {
  override name = 'BackendError';
  constructor(
    message: string,
    readonly code: 'unknown_backend' | 'backend_unavailable',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
