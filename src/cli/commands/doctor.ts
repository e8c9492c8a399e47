/**
 * `lethe doctor`: which TensorFlow.js backends this machine has, in selection order, and why each one was or was not
 * chosen (for webgpu: every Dawn route and the adapter it found). With --check, the chosen backend also runs every
 * trainer and inference on a tiny model against the cpu reference.
 *
 *   lethe doctor                        # the table and the backend a client would pick
 *   lethe doctor --backend webgpu       # would a forced webgpu start? (accepts a software adapter)
 *   lethe doctor --check --json         # + parity with cpu: {"chosen":"webgpu",…,"check":{"maxAbsDiff":{…},"ok":true}}
 */
import { parseArgs } from 'node:util';
import { type BackendName, type BackendProbe, diagnoseBackends, parseBackendName, releaseGpuBackend } from '../../backend/backend.js';
import { type ParityReport, runParity } from '../../bench/gpu/parity.js';
import { type Command, UsageError } from '../command.js';

/** Parity tolerance of --check: max |backend − cpu| over adapters and logits (float32 summation order differs). */
export const CHECK_TOLERANCE = 1e-4;

/** What to do about an unavailable backend: one line, or undefined when there is nothing to install. */
function hint(p: BackendProbe): string | undefined {
  if (p.available) return undefined;
  switch (p.backend) {
    case 'tensorflow':
      return 'npm install @tensorflow/tfjs-node-gpu (NVIDIA, CUDA 11.8 + cuDNN 8.6) or @tensorflow/tfjs-node (CPU, libtensorflow)';
    case 'webgpu':
      return p.routes?.some((r) => r.adapter)
        ? 'only software adapters: install the GPU vendor\'s Vulkan driver, or force this one with --backend webgpu'
        : 'install a Vulkan driver (NVIDIA: the proprietary driver\'s Vulkan ICD; AMD/Intel: mesa-vulkan-drivers), or run .ci/webgpu-driver.sh for a software one';
    default:
      return 'reinstall the package dependencies (npm install)';
  }
}

function table(probes: readonly BackendProbe[], chosen: BackendName | undefined): string {
  const rows: string[] = [];
  for (const p of probes) {
    const mark = p.backend === chosen ? '→' : ' ';
    rows.push(`${mark} ${p.backend.padEnd(10)} ${p.available ? 'yes' : 'no '}  ${p.routes?.length ? '' : p.detail}`.trimEnd());
    for (const r of p.routes ?? []) rows.push(`${' '.repeat(18)}${r.route}: ${r.detail}`);
    const h = hint(p);
    if (h) rows.push(`${' '.repeat(18)}to enable: ${h}`);
  }
  return rows.join('\n');
}

function checkLine(report: ParityReport, ok: boolean): string {
  const diffs = Object.entries(report.maxAbsDiff).map(([run, d]) => `${run} ${d.toExponential(1)}`);
  return `check on ${report.backend}: max |diff| vs cpu: ${diffs.join(', ')} → ${ok ? 'ok' : `FAILED (tolerance ${CHECK_TOLERANCE})`}`;
}

export const doctorCommand: Command = {
  path: ['doctor'],
  summary: 'which TensorFlow.js backends (tensorflow, webgpu, wasm, cpu) this machine has and which one is chosen',
  usage: '[--backend tensorflow|webgpu|wasm|cpu] [--check] [--json]',
  async run(argv) {
    let values: { backend?: string; check?: boolean; json?: boolean };
    try {
      values = parseArgs({ args: argv, options: { backend: { type: 'string' }, check: { type: 'boolean' }, json: { type: 'boolean' } } }).values;
    } catch (err) {
      throw new UsageError((err as Error).message, { cause: err });
    }
    let requested: BackendName | undefined;
    try {
      requested = values.backend ? parseBackendName(values.backend) : undefined;
    } catch (err) {
      throw new UsageError((err as Error).message, { cause: err });
    }
    const { chosen, probes } = await diagnoseBackends(requested);
    let check: (ParityReport & { ok: boolean }) | undefined;
    if (values.check && chosen) {
      try {
        const report = await runParity(chosen);
        const ok = Object.values(report.maxAbsDiff).every((d) => d <= CHECK_TOLERANCE) && report.leakedTensors === 0;
        check = { ...report, ok };
      } finally {
        releaseGpuBackend();
      }
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ requested, chosen, probes, ...(check ? { check } : {}) })}\n`);
    } else {
      const why = requested ? `forced by --backend ${requested}` : 'the first available in selection order';
      process.stdout.write(`TensorFlow.js backends, in selection order:\n${table(probes, chosen)}\n`);
      process.stdout.write(chosen ? `chosen: ${chosen} (${why})\n` : `chosen: none: ${requested} is unavailable\n`);
      if (check) process.stdout.write(`${checkLine(check, check.ok)}\n`);
    }
    return chosen && (!check || check.ok) ? 0 : 1;
  },
};
