/**
 * The WebGPU backend from npm alone: Dawn's Node binding (`webgpu`, an optional dependency) under
 * `@tensorflow/tfjs-backend-webgpu`. No browser, no libtensorflow: what a GPU needs is its Vulkan driver (Linux),
 * Metal (macOS) or D3D12 (Windows), which Dawn finds by itself.
 *
 * Dawn reaches a device by one of two routes, tried in order:
 *   - `native`: Dawn's default backend for the platform (Vulkan on Linux). A real GPU, or lavapipe (Mesa's software
 *     Vulkan; Debian 12 needs Mesa ≥ 25 from bookworm-backports, 22.3 lacks features Dawn requires).
 *   - `opengles` (Linux): Dawn's OpenGL ES backend on EGL without a display (EGL_PLATFORM=surfaceless), which only
 *     offers WebGPU's `compatibility` feature level. Stock Mesa's llvmpipe answers here, so CI can run WebGPU with
 *     nothing but distribution packages.
 * Automatic selection takes only hardware adapters; forcing `webgpu` accepts a software one (that is how CI tests it).
 *
 * tfjs-backend-webgpu registers its own backend factory at import time only when `navigator.gpu` already exists, and
 * that factory asks for a default adapter (which cannot be a compatibility one). So we import it before defining
 * `navigator.gpu` (its kernels register regardless) and register our own factory around the adapter we probed.
 * The backend it makes reads synchronously through Dawn (dawn-sync.ts): the trainers' dataSync calls work unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { captureDawnTasks, enableSyncReads } from './dawn-sync.js';
import { BackendError } from './errors.js';

export const DAWN_ROUTES = ['native', 'opengles'] as const;
export type DawnRoute = (typeof DAWN_ROUTES)[number];

export interface WebGpuConfig {
  /** Routes tried in order. Default: native then opengles on Linux, native elsewhere (Dawn has no GLES there). */
  readonly routes: readonly DawnRoute[];
  /** Accept a software adapter (llvmpipe, lavapipe, SwiftShader). Default false; `--backend webgpu` sets it. */
  readonly acceptSoftware: boolean;
}

export const DEFAULT_WEBGPU: WebGpuConfig = Object.freeze({
  routes: Object.freeze(process.platform === 'linux' ? [...DAWN_ROUTES] : (['native'] as DawnRoute[])),
  acceptSoftware: false,
});

/** What Dawn says about an adapter, plus how we reached it. */
export interface AdapterDescription {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly route: DawnRoute;
  /** WebGPU feature level requested: `core`, or `compatibility` on the GLES route. */
  readonly featureLevel: 'core' | 'compatibility';
  /** A CPU rasteriser posing as a GPU: isFallbackAdapter, or a known software driver's name. */
  readonly software: boolean;
}

/** One route tried: the adapter it gave, or why none. */
export interface RouteProbe {
  readonly route: DawnRoute;
  readonly adapter?: AdapterDescription;
  readonly detail: string;
}

export interface WebGpuProbe {
  /** The adapter to use, when one qualifies under the config. */
  readonly chosen?: { readonly adapter: AdapterDescription; readonly activate: () => Promise<void> };
  readonly routes: readonly RouteProbe[];
  /** One line: what was found and why it does or does not qualify. */
  readonly detail: string;
}

// Minimal structural views of Dawn's objects: the optional dependency's types may be absent at build time.
interface GpuAdapterInfoLike {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
  readonly isFallbackAdapter?: boolean;
}
interface GpuDeviceLike {
  destroy(): void;
}
interface GpuAdapterLike {
  readonly info: GpuAdapterInfoLike;
  readonly isFallbackAdapter?: boolean;
  readonly features: ReadonlySet<string>;
  readonly limits: Record<string, number>;
  requestDevice(descriptor: object): Promise<GpuDeviceLike>;
}
interface GpuLike {
  requestAdapter(options?: object): Promise<GpuAdapterLike | null>;
}
interface DawnModule {
  create(options: string[]): GpuLike;
  globals: object;
}
interface TfWebGpuModule {
  WebGPUBackend: new (device: GpuDeviceLike, adapterInfo?: GpuAdapterInfoLike) => tf.KernelBackend;
}

/** Where the active backend keeps the description of the adapter it runs on (see adapterOf). */
const ADAPTER = Symbol.for('lethe.webgpuAdapter');

const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|software|microsoft basic render/i;

/** True for software rasterisers: Dawn's fallback flag, or a known CPU driver named anywhere in the info. */
export function isSoftwareAdapter(info: GpuAdapterInfoLike, isFallback = false): boolean {
  if (isFallback || info.isFallbackAdapter) return true;
  return [info.vendor, info.architecture, info.device, info.description].some((s) => s !== undefined && SOFTWARE_NAMES.test(s));
}

/** "vendor architecture — description", skipping empty fields: the one-line name logs and reports use. */
export function adapterLabel(a: AdapterDescription): string {
  const head = [a.vendor, a.architecture].filter((s) => s).join(' ');
  const body = a.description || a.device;
  return `${head ? `${head} — ` : ''}${body} (${a.route}${a.software ? ', software' : ''})`;
}

async function loadDawn(): Promise<DawnModule> {
  const spec = 'webgpu'; // a variable: the optional dependency may be missing at build time
  try {
    const mod = (await import(spec)) as DawnModule;
    captureDawnTasks(); // before Dawn schedules its first task: synchronous reads need every one (dawn-sync.ts)
    // Dawn's classes and enums (GPUBufferUsage, GPUMapMode, ...) must be globals: tfjs-backend-webgpu uses them.
    Object.assign(globalThis, mod.globals);
    return mod;
  } catch (err) {
    throw new BackendError(`the optional package "webgpu" (Dawn for Node) cannot load: ${(err as Error).message.split('\n')[0]}`, 'backend_unavailable', { cause: err });
  }
}

async function requestOn(dawn: DawnModule, route: DawnRoute): Promise<{ gpu: GpuLike; adapter: GpuAdapterLike | null }> {
  if (route === 'native') {
    const gpu = dawn.create([]);
    return { gpu, adapter: await gpu.requestAdapter({ powerPreference: 'high-performance' }) };
  }
  // EGL reads this when Dawn opens its display; without it Mesa looks for X11/Wayland and eglInitialize fails.
  process.env.EGL_PLATFORM ??= 'surfaceless';
  const gpu = dawn.create(['backend=opengles']);
  return { gpu, adapter: await gpu.requestAdapter({ featureLevel: 'compatibility', powerPreference: 'high-performance' }) };
}

function describe(adapter: GpuAdapterLike, route: DawnRoute): AdapterDescription {
  const info = adapter.info;
  return Object.freeze({
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    route,
    featureLevel: route === 'opengles' ? 'compatibility' : 'core',
    software: isSoftwareAdapter(info, adapter.isFallbackAdapter === true),
  });
}

/** navigator.gpu, which tfjs-backend-webgpu checks for. Node 21+ has a navigator object; Node 20 has none. */
function exposeNavigatorGpu(gpu: GpuLike): void {
  const g = globalThis as { navigator?: object };
  if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

/** The same limits tfjs-backend-webgpu's own factory asks for: the adapter's maxima, not WebGPU's defaults. */
function deviceDescriptor(adapter: GpuAdapterLike): object {
  const keys = ['maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup'];
  const requiredLimits = Object.fromEntries(keys.map((k) => [k, adapter.limits[k]]));
  const requiredFeatures = adapter.features.has('timestamp-query') ? ['timestamp-query'] : [];
  return { requiredLimits, requiredFeatures };
}

async function activate(gpu: GpuLike, adapter: GpuAdapterLike, description: AdapterDescription): Promise<void> {
  const spec = '@tensorflow/tfjs-backend-webgpu';
  let mod: TfWebGpuModule;
  try {
    mod = (await import(spec)) as TfWebGpuModule; // before navigator.gpu: see the header
  } catch (err) {
    throw new BackendError(`the optional package ${spec} cannot load: ${(err as Error).message.split('\n')[0]}`, 'backend_unavailable', { cause: err });
  }
  exposeNavigatorGpu(gpu);
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', async () => {
    const device = await adapter.requestDevice(deviceDescriptor(adapter));
    const backend = new mod.WebGPUBackend(device, adapter.info);
    Object.defineProperty(backend, ADAPTER, { value: description });
    enableSyncReads(backend, captureDawnTasks());
    // Destroying the device on dispose releases Dawn's handles so the process can exit.
    const dispose = backend.dispose.bind(backend);
    backend.dispose = () => {
      dispose();
      device.destroy();
    };
    return backend;
  });
}

/**
 * Looks for a WebGPU adapter along `config.routes`. The first adapter that qualifies (hardware, or any when
 * `acceptSoftware`) is `chosen`; `activate()` registers it as tfjs's `webgpu` backend (call tf.setBackend after).
 */
export async function probeWebGpu(config: WebGpuConfig = DEFAULT_WEBGPU): Promise<WebGpuProbe> {
  let dawn: DawnModule;
  try {
    dawn = await loadDawn();
  } catch (err) {
    return { routes: [], detail: (err as Error).message };
  }
  const routes: RouteProbe[] = [];
  for (const route of config.routes) {
    let found: { gpu: GpuLike; adapter: GpuAdapterLike | null };
    try {
      found = await requestOn(dawn, route);
    } catch (err) {
      routes.push({ route, detail: `request failed: ${(err as Error).message.split('\n')[0]}` });
      continue;
    }
    const { gpu, adapter } = found;
    if (!adapter) {
      routes.push({ route, detail: route === 'native' ? 'no adapter (no GPU driver Dawn can use, e.g. no Vulkan ICD)' : 'no adapter (no EGL/GLES driver)' });
      continue;
    }
    const description = describe(adapter, route);
    const qualifies = !description.software || config.acceptSoftware;
    routes.push({ route, adapter: description, detail: `${adapterLabel(description)}${qualifies ? '' : ': software adapter, not chosen automatically (force it with --backend webgpu)'}` });
    if (qualifies) {
      return { chosen: { adapter: description, activate: () => activate(gpu, adapter, description) }, routes, detail: adapterLabel(description) };
    }
  }
  const detail = routes.length === 0 ? 'no route tried' : routes.map((r) => `${r.route}: ${r.detail}`).join('; ');
  return { routes, detail };
}

/** The adapter a tfjs backend runs on: set for backends our webgpu factory made, undefined for every other. */
export function adapterOf(backend: tf.KernelBackend | undefined): AdapterDescription | undefined {
  return (backend as unknown as Record<symbol, AdapterDescription | undefined> | undefined)?.[ADAPTER];
}
