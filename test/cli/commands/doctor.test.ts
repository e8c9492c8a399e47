/**
 * `lethe doctor`. Probing webgpu loads Dawn, so those runs happen in a child process (dist/, built by `npm test`);
 * flag errors are checked in-process (they fail before any probe).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/cli/command.js';
import { doctorCommand } from '../../../src/cli/commands/doctor.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const DOCTOR = pathToFileURL(join(ROOT, 'dist/cli/commands/doctor.js')).href;

interface DoctorJson {
  requested?: string;
  chosen?: string;
  probes: { backend: string; available: boolean; detail: string; routes?: { route: string; detail: string }[] }[];
}

/** Runs doctorCommand from dist in a child with `args`; resolves to its exit code and parsed JSON line. */
function doctor(args: string[]): Promise<{ code: number | null; json: DoctorJson; stderr: string }> {
  const script = `const { doctorCommand } = await import(${JSON.stringify(DOCTOR)}); process.exitCode = await doctorCommand.run(${JSON.stringify(args)});`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        resolve({ code, json: JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as DoctorJson, stderr });
      } catch (err) {
        reject(new Error(`doctor printed no JSON (exit ${code}); stdout: ${stdout}; stderr: ${stderr}`, { cause: err }));
      }
    });
  });
}

describe('lethe doctor', () => {
  it('doctor – lists tensorflow, webgpu, wasm and cpu in selection order and chooses the first available', async () => {
    const { code, json } = await doctor(['--json']);
    expect(code).toBe(0);
    expect(json.probes.map((p) => p.backend)).toEqual(['tensorflow', 'webgpu', 'wasm', 'cpu']);
    expect(json.chosen).toBe(json.probes.find((p) => p.available)?.backend);
    for (const p of json.probes) expect(p.detail, p.backend).not.toBe('');
    // webgpu reports every Dawn route it tried (native first); without a GPU device node Dawn is not started at all
    const webgpu = json.probes[1]!;
    if (webgpu.routes) expect(webgpu.routes[0]?.route).toBe('native');
    else expect(webgpu.detail).toMatch(/no GPU device node/);
  });

  it('doctor – --backend cpu chooses cpu even when better backends exist', async () => {
    const { code, json } = await doctor(['--json', '--backend', 'cpu']);
    expect(code).toBe(0);
    expect(json.requested).toBe('cpu');
    expect(json.chosen).toBe('cpu');
  });

  it('doctor – an unknown backend or flag is a usage error naming it', async () => {
    await expect(doctorCommand.run(['--backend', 'webgl'])).rejects.toThrow(UsageError);
    await expect(doctorCommand.run(['--backend', 'webgl'])).rejects.toThrow(/unknown backend "webgl"/);
    await expect(doctorCommand.run(['--gpu'])).rejects.toThrow(UsageError);
  });
});
