#!/usr/bin/env node
/**
 * The GPU check: one process per backend, one JSON line on stdout, nothing from the network.
 *
 *   node dist/bench/gpu/check.js parity --backend webgpu   # every trainer on cpu, then on webgpu: max |diff|, times
 *   node dist/bench/gpu/check.js bench --backend webgpu    # model-core timings (forward, backprop, MeZO steps)
 *   node dist/bench/gpu/check.js bench --backend wasm
 *
 * .ci/gpu-check.sh runs the bench on webgpu (--require-hardware) and on wasm. The process always exits when done: Dawn's device is
 * destroyed so Node can exit by itself; should a native handle still hold the event loop, it is ended after 10 s
 * with exit code 3 (the tests require 0).
 */
import { parseArgs } from 'node:util';
import { adapterInfo, initBackend, parseBackendName, releaseGpuBackend } from '../../backend/backend.js';
import { adapterLabel } from '../../backend/webgpu.js';
import { type CoreBenchCase, DEFAULT_CORE_BENCH, benchModelCore } from './core-bench.js';
import { type ParityRun, DEFAULT_PARITY, PARITY_RUNS, runParity } from './parity.js';

const CASES = DEFAULT_CORE_BENCH.cases.map((c) => c.name);
const USAGE = `usage: check.js parity|bench --backend <tensorflow|webgpu|wasm|cpu> [--steps N] [--runs ${PARITY_RUNS.join(',')}] [--cases ${CASES.join(',')}] [--require-hardware]`;

function parseRuns(value: string | undefined): readonly ParityRun[] {
  if (!value) return PARITY_RUNS;
  const runs = value.split(',');
  const bad = runs.filter((r) => !(PARITY_RUNS as readonly string[]).includes(r));
  if (bad.length > 0) throw new Error(`unknown run(s) ${bad.join(', ')}; expected some of ${PARITY_RUNS.join(', ')}`);
  return runs as ParityRun[];
}

function parseCases(value: string | undefined): readonly CoreBenchCase[] {
  if (!value) return DEFAULT_CORE_BENCH.cases;
  const names = value.split(',');
  const bad = names.filter((n) => !CASES.includes(n));
  if (bad.length > 0) throw new Error(`unknown case(s) ${bad.join(', ')}; expected some of ${CASES.join(', ')}`);
  return DEFAULT_CORE_BENCH.cases.filter((c) => names.includes(c.name));
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { backend: { type: 'string' }, steps: { type: 'string' }, runs: { type: 'string' }, cases: { type: 'string' }, 'require-hardware': { type: 'boolean' } },
  });
  const mode = positionals[0];
  if ((mode !== 'parity' && mode !== 'bench') || !values.backend) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const backend = parseBackendName(values.backend);
  if (values['require-hardware']) {
    await initBackend(backend);
    const adapter = adapterInfo();
    if (adapter?.software) {
      // A GPU machine whose vendor Vulkan driver is missing (e.g. a container without graphics capabilities) falls
      // back to lavapipe; its numbers must not pass for the GPU's.
      process.stderr.write(`gpu check: --require-hardware, but the adapter is ${adapterLabel(adapter)}: install the GPU's Vulkan driver (NVIDIA: the driver's Vulkan ICD, e.g. NVIDIA_DRIVER_CAPABILITIES=graphics,compute,utility in containers)\n`);
      return 4;
    }
  }
  const steps = values.steps ? { steps: Number(values.steps) } : {};
  const report =
    mode === 'parity'
      ? await runParity(backend, { ...DEFAULT_PARITY, ...steps, runs: parseRuns(values.runs) })
      : await benchModelCore(backend, { ...steps, cases: parseCases(values.cases) });
  process.stdout.write(`${JSON.stringify({ check: mode, ...report })}\n`);
  return 0;
}

/** Exit code when the process had to be ended by force: the report is printed, but something native leaked. */
const FORCED_EXIT = 3;

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  const e = err as Error & { code?: string };
  process.stderr.write(`gpu check: ${e.name}${e.code ? ` [${e.code}]` : ''}: ${e.message}\n`);
  process.exitCode = 1;
} finally {
  releaseGpuBackend();
}
// Releasing the device should let Node exit by itself; if a native handle still holds the loop, end it, and say so.
setTimeout(() => {
  process.stderr.write('gpu check: the process did not exit 10 s after releasing the GPU backend; forcing exit\n');
  process.exit(FORCED_EXIT);
}, 10_000).unref();
