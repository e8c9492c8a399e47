/**
 * Synchronous GPU → CPU reads (dataSync, arraySync) for tfjs-backend-webgpu under Dawn's Node binding.
 *
 * The trainers read scalars synchronously (losses, per-example statistics). In a browser, tfjs-backend-webgpu does
 * that by drawing through an OffscreenCanvas; Node has none, so dataSync throws "OffscreenCanvas is not defined".
 * WebGPU itself only offers `mapAsync`, whose completion Dawn's binding delivers from a task it schedules with the
 * global `setImmediate` (its AsyncRunner calls wgpuInstanceProcessEvents there). We wrap `setImmediate` once,
 * before Dawn starts, to keep a handle on those native tasks: a synchronous read then copies the tensor to a
 * MAP_READ staging buffer, calls mapAsync, and runs Dawn's pending tasks itself until the buffer reports `mapped`,
 * with the same staging-buffer steps as the backend's own async `getBufferData`. Each captured task runs exactly
 * once, whether we run it or the event loop does.
 *
 * Only Dawn's tasks are captured: native functions of arity 0 with an empty name (what N-API creates). Promise
 * resolvers have arity 1, bound functions a "bound …" name, and JS callbacks are not native code.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendError } from './errors.js';

const WRAPPED = Symbol.for('lethe.dawnSetImmediate');
/** A stuck read fails after this long instead of hanging the process (a lost device, a driver fault). */
const READ_TIMEOUT_MS = 120_000;

type Task = () => void;

interface WrappedSetImmediate {
  (...args: unknown[]): unknown;
  [WRAPPED]?: Set<Task>;
}

function isNapiTask(fn: unknown): fn is Task {
  return typeof fn === 'function' && fn.length === 0 && fn.name === '' && Function.prototype.toString.call(fn).includes('[native code]');
}

/** Installs the setImmediate wrapper (idempotent) and returns the set of Dawn tasks not yet run. */
export function captureDawnTasks(): Set<Task> {
  const current = globalThis.setImmediate as unknown as WrappedSetImmediate;
  const existing = current[WRAPPED];
  if (existing) return existing;
  const pending = new Set<Task>();
  const original = globalThis.setImmediate;
  const wrapped = function setImmediate(callback: unknown, ...args: unknown[]) {
    if (!isNapiTask(callback)) return (original as (...a: unknown[]) => unknown)(callback, ...args);
    const once: Task = () => {
      if (!pending.delete(once)) return; // already run
      callback();
    };
    pending.add(once);
    return original(once);
  } as unknown as WrappedSetImmediate;
  wrapped[WRAPPED] = pending;
  // Keep util.promisify(setImmediate) working: Node exposes it through this symbol.
  const custom = (original as unknown as Record<symbol, unknown>)[Symbol.for('nodejs.util.promisify.custom')];
  if (custom) Object.defineProperty(wrapped, Symbol.for('nodejs.util.promisify.custom'), { value: custom });
  globalThis.setImmediate = wrapped as unknown as typeof globalThis.setImmediate;
  return pending;
}

// Structural view of the parts of WebGPUBackend a synchronous read uses (all present in tfjs-backend-webgpu 4.22).
interface GpuBufferLike {
  readonly size: number;
  readonly mapState: 'unmapped' | 'pending' | 'mapped';
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
}
interface TensorDataLike {
  values: tf.backend_util.BackendValues | null;
  dtype: tf.DataType;
  resource: GpuBufferLike | null;
}
interface WebGpuBackendInternals {
  tensorMap: { get(dataId: object): TensorDataLike };
  bufferManager: { acquireBuffer(size: number, usage: number): GpuBufferLike; releaseBuffer(buffer: GpuBufferLike): void };
  commandEncoder: { copyBufferToBuffer(src: GpuBufferLike, so: number, dst: GpuBufferLike, doff: number, size: number): void };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  convertAndCacheOnCPU(dataId: object, values: tf.backend_util.BackendValues): tf.backend_util.BackendValues;
  readSync(dataId: object): tf.backend_util.BackendValues;
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/** Runs Dawn's pending tasks until `buffer` is mapped. */
function pumpUntilMapped(buffer: GpuBufferLike, pending: Set<Task>): void {
  const began = performance.now();
  for (let round = 0; buffer.mapState === 'pending'; round++) {
    for (const task of [...pending]) task();
    if (buffer.mapState !== 'pending') break;
    // Spin briefly (small reads finish in microseconds), then sleep so the driver's threads get the CPU.
    if (round > 64) Atomics.wait(SLEEPER, 0, 0, round > 1024 ? 0.5 : 0.05);
    if (performance.now() - began > READ_TIMEOUT_MS) {
      throw new BackendError(`a synchronous WebGPU read did not complete in ${READ_TIMEOUT_MS / 1000} s (device lost or driver hung)`, 'backend_unavailable');
    }
  }
  if (buffer.mapState !== 'mapped') throw new BackendError('a synchronous WebGPU read failed: mapAsync did not map the staging buffer', 'backend_unavailable');
}

/** Replaces `backend.readSync` (OffscreenCanvas-based) with the Dawn-driven read above. */
export function enableSyncReads(backend: tf.KernelBackend, pending: Set<Task>): void {
  const b = backend as unknown as WebGpuBackendInternals;
  const fallback = b.readSync.bind(b);
  b.readSync = (dataId: object) => {
    const data = b.tensorMap.get(dataId);
    if (data.values != null || data.dtype === 'string' || data.dtype === 'complex64' || !data.resource) return fallback(dataId);
    const size = data.resource.size;
    const staging = b.bufferManager.acquireBuffer(size, GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ);
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    b.commandEncoder.copyBufferToBuffer(data.resource, 0, staging, 0, size);
    b.submitQueue();
    staging.mapAsync(GPUMapMode.READ).catch(() => undefined); // failure shows as mapState 'unmapped'
    let bytes: ArrayBuffer;
    try {
      pumpUntilMapped(staging, pending);
      bytes = staging.getMappedRange().slice(0);
      staging.unmap();
    } finally {
      b.bufferManager.releaseBuffer(staging);
    }
    return b.convertAndCacheOnCPU(dataId, tf.util.convertBackendValuesAndArrayBuffer(bytes, data.dtype) as tf.backend_util.BackendValues);
  };
}

// Dawn's globals, installed by webgpu.ts before any backend exists.
declare const GPUBufferUsage: { readonly COPY_DST: number; readonly MAP_READ: number };
declare const GPUMapMode: { readonly READ: number };
