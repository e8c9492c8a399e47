/**
 * TensorFlow.js backend selection. Order, best first: `tensorflow` (tfjs-node-gpu or tfjs-node, loaded dynamically
 * because they cannot be a hard dependency: their install downloads libtensorflow), `wasm` (the embedded default,
 * SIMD), `cpu` (pure JS, slow; the reference for numerics). `--backend` / LETHE_BACKEND forces one.
 *
 * Every module imports tfjs from '@tensorflow/tfjs' (not tfjs-core alone): its Node bundle registers the gradients
 * that tf.grad needs; tfjs-core's Node bundle does not.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendError } from './errors.js';

export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** One line per backend considered: what was tried and why it was or was not chosen. */
export interface BackendProbe {
  readonly backend: BackendName;
  readonly available: boolean;
  readonly detail: string;
}

export interface BackendChoice {
  readonly backend: BackendName;
  readonly reason: string;
  readonly probes: readonly BackendProbe[];
}

export function parseBackendName(value: string): BackendName {
  if ((BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  throw new BackendError(`unknown backend "${value}"; expected one of ${BACKENDS.join(', ')}`, 'unknown_backend');
}

async function tryTensorflow(): Promise<BackendProbe> {
  const tried: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      return { backend: 'tensorflow', available: true, detail: `loaded ${pkg}` };
    } catch (err) {
      tried.push(`${pkg}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return { backend: 'tensorflow', available: false, detail: `not installed (${tried.join('; ')})` };
}

async function tryWasm(): Promise<BackendProbe> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    return { backend: 'wasm', available: true, detail: 'loaded @tensorflow/tfjs-backend-wasm (SIMD, one thread)' };
  } catch (err) {
    return { backend: 'wasm', available: false, detail: `cannot load: ${(err as Error).message}` };
  }
}

async function probe(name: BackendName): Promise<BackendProbe> {
  switch (name) {
    case 'tensorflow':
      return tryTensorflow();
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return { backend: 'cpu', available: true, detail: 'pure JavaScript, always available' };
  }
}

/**
 * Picks and activates a backend. With `requested`, only that one is tried and failure is an error; otherwise the
 * first available in BACKENDS order wins. The result says why, for logs and `lethe doctor`.
 */
export async function initBackend(requested?: BackendName): Promise<BackendChoice> {
  const order: readonly BackendName[] = requested ? [requested] : BACKENDS;
  const probes: BackendProbe[] = [];
  for (const name of order) {
    const p = await probe(name);
    probes.push(p);
    if (!p.available) continue;
    // Production mode skips per-op NaN/shape debug checks and the cpu backend's tfjs-node nag; we log our own choice.
    tf.enableProdMode();
    if (await tf.setBackend(name)) {
      await tf.ready();
      const reason = requested ? `forced by --backend/LETHE_BACKEND (${p.detail})` : p.detail;
      return { backend: name, reason, probes };
    }
    probes[probes.length - 1] = { ...p, available: false, detail: `${p.detail}, but setBackend failed` };
  }
  throw new BackendError(
    `backend ${requested ?? 'selection'} unavailable: ${probes.map((p) => `${p.backend}: ${p.detail}`).join('; ')}`,
    'backend_unavailable',
  );
}

/** The backend named by LETHE_BACKEND, if set. */
export function backendFromEnv(env: NodeJS.ProcessEnv = process.env): BackendName | undefined {
  const v = env.LETHE_BACKEND;
  return v ? parseBackendName(v) : undefined;
}
