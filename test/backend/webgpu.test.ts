/**
 * The webgpu backend through a real driver: a hardware GPU where there is one, else Mesa's software lavapipe or
 * llvmpipe (.ci/webgpu-driver.sh installs them). Dawn runs only in child processes, so a native crash cannot take
 * the test runner down; the children run dist/ (built by `npm test` first).
 *
 * A missing driver fails the test with the command that installs one; LETHE_SKIP_WEBGPU=1 skips it explicitly.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BACKENDS, parseBackendName } from '../../src/backend/backend.js';
import { type AdapterDescription, adapterLabel, isSoftwareAdapter } from '../../src/backend/webgpu.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHECK = join(ROOT, 'dist/bench/gpu/check.js');
const SKIP = process.env.LETHE_SKIP_WEBGPU === '1';
const TOLERANCE = 1e-4;

interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs node with `args`; SIGKILLs it after `timeoutMs` (a hung Dawn must not hang the suite). */
function runNode(args: string[], timeoutMs: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const NO_DRIVER = /backend webgpu unavailable/;

function driverMissing(r: ChildResult): Error {
  return new Error(
    `no WebGPU adapter on this machine, so the webgpu backend cannot be tested.\n` +
      `Install a driver: run .ci/webgpu-driver.sh as root (Mesa's software Vulkan/GLES; a GPU vendor's Vulkan driver works too),\n` +
      `or set LETHE_SKIP_WEBGPU=1 to skip this test on purpose.\nchild stderr:\n${r.stderr}`,
  );
}

describe('webgpu adapter classification', () => {
  const info = (description: string, extra: Partial<AdapterDescription> = {}) => ({ vendor: '', architecture: '', device: '', description, ...extra });

  it('isSoftwareAdapter – flags llvmpipe, lavapipe, SwiftShader and fallback adapters, not a real GPU', () => {
    expect(isSoftwareAdapter(info('llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)'))).toBe(true);
    expect(isSoftwareAdapter(info('OpenGL ES 3.2 Mesa 22.3.6', { device: 'llvmpipe-llvm-15-0-6-256-bits-' }))).toBe(true);
    expect(isSoftwareAdapter(info('', { vendor: 'mesa', architecture: 'software' }))).toBe(true);
    expect(isSoftwareAdapter(info('SwiftShader Device (Subzero)'))).toBe(true);
    expect(isSoftwareAdapter(info('NVIDIA H200'), true)).toBe(true); // Dawn's own fallback flag wins
    expect(isSoftwareAdapter(info('NVIDIA H200', { vendor: 'nvidia', architecture: 'hopper' }))).toBe(false);
    expect(isSoftwareAdapter(info('AMD Radeon RX 7900 XTX (RADV NAVI31)', { vendor: 'amd', architecture: 'rdna-3' }))).toBe(false);
  });

  it('adapterLabel – names vendor, architecture, description and route, and marks software', () => {
    const a: AdapterDescription = { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200', route: 'native', featureLevel: 'core', software: false };
    expect(adapterLabel(a)).toBe('nvidia hopper — NVIDIA H200 (native)');
    expect(adapterLabel({ ...a, vendor: '', architecture: '', description: '', device: 'llvmpipe', route: 'opengles', software: true })).toBe('llvmpipe (opengles, software)');
  });

  it('backends – webgpu is selected after tensorflow and before wasm, and can be named', () => {
    expect(BACKENDS).toEqual(['tensorflow', 'webgpu', 'wasm', 'cpu']);
    expect(parseBackendName('webgpu')).toBe('webgpu');
    expect(() => parseBackendName('webgl')).toThrow(/unknown backend "webgl"/);
  });
});

describe.skipIf(SKIP)('webgpu backend through a driver (child process)', () => {
  it('webgpu – inference, a LoRA backprop step and a MeZO step match cpu within 1e-4, and the child exits by itself', async () => {
    // Arrange
    expect(existsSync(CHECK), `${CHECK} is missing: run npm run build first`).toBe(true);
    // Act: two steps of each trainer (lora_A only gets a gradient once lora_B has moved off zero)
    const r = await runNode([CHECK, 'parity', '--backend', 'webgpu', '--runs', 'inference,backprop,mezo'], 170_000);
    // Assert
    if (r.code !== 0 && NO_DRIVER.test(r.stderr)) throw driverMissing(r);
    expect(r.signal, `the child hung and was killed; stderr:\n${r.stderr}`).toBeNull();
    expect(r.code, `exit code 3 means Dawn kept the process alive; stderr:\n${r.stderr}`).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      backend: string;
      adapter: AdapterDescription;
      maxAbsDiff: Record<string, number>;
      leakedTensors: number;
      memory: { gpuBytesAllocated?: number };
    };
    expect(report.backend).toBe('webgpu');
    expect(report.adapter.description || report.adapter.device).not.toBe('');
    expect(Object.keys(report.maxAbsDiff)).toEqual(['inference', 'backprop', 'mezo']);
    for (const [run, diff] of Object.entries(report.maxAbsDiff)) expect(diff, run).toBeLessThan(TOLERANCE); // measured ≤ 1.6e-6
    expect(report.leakedTensors).toBe(0);
    expect(report.memory.gpuBytesAllocated).toBeGreaterThan(0); // the backend's own buffer counters are reported
  }, 180_000);
});
