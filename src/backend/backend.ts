/**
 * TensorFlow.js backend selection. Order, best first:
 *   - `tensorflow`: tfjs-node-gpu (CUDA) or tfjs-node, loaded dynamically because they cannot be a hard dependency
 *     (their install downloads libtensorflow);
 *   - `webgpu`: Dawn's Node binding under tfjs-backend-webgpu (optional dependencies, see webgpu.ts), chosen
 *     automatically only on a hardware adapter;
 *   - `wasm`: the embedded default (SIMD, one thread);
 *   - `cpu`: pure JS, slow; the reference for numerics.
 * `--backend` / LETHE_BACKEND forces one (a forced `webgpu` accepts a software adapter).
 *
 * Every module imports tfjs from '@tensorflow/tfjs' (not tfjs-core alone): its Node bundle registers the gradients
 * that tf.grad needs; tfjs-core's Node bundle does not.
 */
import { readdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { BackendError } from './errors.js';
import { type AdapterDescription, type RouteProbe, DEFAULT_WEBGPU, adapterOf, probeWebGpu } from './webgpu.js';

export type { AdapterDescription, RouteProbe } from './webgpu.js';

export const BACKENDS = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** One line per backend considered: what was tried and why it was or was not chosen. */
export interface BackendProbe {
  readonly backend: BackendName;
  readonly available: boolean;
  readonly detail: string;
  /** webgpu: the adapter that qualified. */
  readonly adapter?: AdapterDescription;
  /** webgpu: each Dawn route tried and what it found. */
  readonly routes?: readonly RouteProbe[];
}

export interface BackendChoice {
  readonly backend: BackendName;
  readonly reason: string;
  readonly probes: readonly BackendProbe[];
}

/** A probe plus how to make it tfjs's active backend (only for available ones). */
interface Candidate {
  readonly probe: BackendProbe;
  readonly activate?: () => Promise<void>;
}

export function parseBackendName(value: string): BackendName {
  if ((BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  throw new BackendError(`unknown backend "${value}"; expected one of ${BACKENDS.join(', ')}`, 'unknown_backend');
}

async function tryTensorflow(): Promise<Candidate> {
  const tried: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      return { probe: { backend: 'tensorflow', available: true, detail: `loaded ${pkg}` } };
    } catch (err) {
      const e = err as Error & { code?: string };
      // Absent is the common case and needs no stack of paths; a package that is there but fails (no CUDA) does.
      tried.push(e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(pkg) ? `${pkg} not installed` : `${pkg}: ${e.message.split('\n')[0]}`);
    }
  }
  return { probe: { backend: 'tensorflow', available: false, detail: tried.join('; ') } };
}

/**
 * On Linux a hardware GPU shows up as a device node (DRM render node, or NVIDIA's). Without one only a software
 * adapter can exist, which automatic selection never takes, so we skip starting Dawn: it costs about a second and
 * prints driver warnings in every process.
 */
function linuxHasGpuDevice(): boolean {
  const has = (dir: string, prefix: string): boolean => {
    try {
      return readdirSync(dir).some((f) => f.startsWith(prefix));
    } catch {
      return false;
    }
  };
  return has('/dev/dri', 'renderD') || has('/dev', 'nvidia');
}

async function tryWebGpu(forced: boolean): Promise<Candidate> {
  if (!forced && process.platform === 'linux' && !linuxHasGpuDevice()) {
    const detail = 'no GPU device node (/dev/dri/renderD*, /dev/nvidia*), so not probed; --backend webgpu forces a software adapter';
    return { probe: { backend: 'webgpu', available: false, detail } };
  }
  const found = await probeWebGpu({ ...DEFAULT_WEBGPU, acceptSoftware: forced });
  const base = { backend: 'webgpu' as const, routes: found.routes };
  if (!found.chosen) return { probe: { ...base, available: false, detail: found.detail } };
  return {
    probe: { ...base, available: true, detail: `adapter ${found.detail}`, adapter: found.chosen.adapter },
    activate: found.chosen.activate,
  };
}

async function tryWasm(): Promise<Candidate> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    return { probe: { backend: 'wasm', available: true, detail: 'loaded @tensorflow/tfjs-backend-wasm (SIMD, one thread)' } };
  } catch (err) {
    return { probe: { backend: 'wasm', available: false, detail: `cannot load: ${(err as Error).message}` } };
  }
}

async function candidate(name: BackendName, forced: boolean): Promise<Candidate> {
  switch (name) {
    case 'tensorflow':
      return tryTensorflow();
    case 'webgpu':
      return tryWebGpu(forced);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return { probe: { backend: 'cpu', available: true, detail: 'pure JavaScript, always available' } };
  }
}

/**
 * Probes every backend in selection order without activating any, for `lethe doctor`: `chosen` is the one
 * initBackend(requested) would pick (undefined when the requested one is unavailable).
 */
export async function diagnoseBackends(requested?: BackendName): Promise<{ chosen?: BackendName; probes: BackendProbe[] }> {
  const probes: BackendProbe[] = [];
  for (const name of BACKENDS) probes.push((await candidate(name, name === requested)).probe);
  const chosen = requested ? probes.find((p) => p.backend === requested && p.available) : probes.find((p) => p.available);
  return { chosen: chosen?.backend, probes };
}

/**
 * Picks and activates a backend. With `requested`, only that one is tried and failure is an error; otherwise the
 * first available in BACKENDS order wins. The result says why, for logs and `lethe doctor`.
 */
export async function initBackend(requested?: BackendName): Promise<BackendChoice> {
  const order: readonly BackendName[] = requested ? [requested] : BACKENDS;
  const probes: BackendProbe[] = [];
  for (const name of order) {
    const c = await candidate(name, name === requested);
    probes.push(c.probe);
    if (!c.probe.available) continue;
    // Production mode skips per-op NaN/shape debug checks and the cpu backend's tfjs-node nag; we log our own choice.
    tf.enableProdMode();
    try {
      await c.activate?.();
      if (await tf.setBackend(name)) {
        await tf.ready();
        const reason = requested ? `forced by --backend/LETHE_BACKEND (${c.probe.detail})` : c.probe.detail;
        return { backend: name, reason, probes };
      }
      probes[probes.length - 1] = { ...c.probe, available: false, detail: `${c.probe.detail}, but setBackend failed` };
    } catch (err) {
      probes[probes.length - 1] = { ...c.probe, available: false, detail: `${c.probe.detail}, but it failed to start: ${(err as Error).message.split('\n')[0]}` };
    }
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

/** The GPU adapter the active backend runs on (vendor, architecture, description), undefined unless it is webgpu. */
export function adapterInfo(): AdapterDescription | undefined {
  return tf.getBackend() === 'webgpu' ? adapterOf(tf.backend()) : undefined;
}

/** Tensor memory of the active backend. GPU fields only where the backend keeps its own buffer counters (webgpu). */
export interface BackendMemory {
  readonly backend: string;
  readonly numTensors: number;
  /** Bytes of live tensors (tf.memory().numBytes). */
  readonly numBytes: number;
  /** webgpu: bytes of GPU buffers holding live data. */
  readonly gpuBytesInUse?: number;
  /** webgpu: bytes of GPU buffers allocated, free pool included (the device memory actually held). */
  readonly gpuBytesAllocated?: number;
}

export function backendMemory(): BackendMemory {
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
  return {
    backend: tf.getBackend(),
    numTensors: m.numTensors,
    numBytes: m.numBytes,
    ...(m.numBytesInGPU !== undefined ? { gpuBytesInUse: m.numBytesInGPU } : {}),
    ...(m.numBytesAllocatedInGPU !== undefined ? { gpuBytesAllocated: m.numBytesAllocatedInGPU } : {}),
  };
}

/**
 * Disposes the webgpu backend (its buffers and Dawn device), so nothing native keeps the process alive. Call at the
 * end of a run; tfjs falls back to another registered backend afterwards. No-op for other backends. Idempotent.
 */
export function releaseGpuBackend(): void {
  // Not tf.findBackend: it would initialise a registered but unused backend.
  if ('webgpu' in tf.engine().registry) tf.removeBackend('webgpu');
}
