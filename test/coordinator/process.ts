/** A real coordinator process (test/coordinator/fixtures/coordinator-process.mjs, on dist/) for the kill -9 and fuzz tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PROCESS = fileURLToPath(new URL('./fixtures/coordinator-process.mjs', import.meta.url));
export const BUILT = fileURLToPath(new URL('../../dist/coordinator/coordinator.js', import.meta.url));

export interface Running {
  readonly child: ChildProcess;
  readonly address: string;
  readonly stderr: () => string;
}

/** `env` adds variables to the child's environment (the privacy crash tests set LETHE_TEST_CRASH_AFTER). */
export function startProcess(dataDir: string, env: Readonly<Record<string, string>> = {}): Promise<Running> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PROCESS, dataDir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /ready (\d+)\n/.exec(out);
      if (m) resolve({ child, address: `127.0.0.1:${m[1]}`, stderr: () => err });
    });
    child.on('exit', (code, signal) => reject(new Error(`coordinator exited early (${code ?? signal}): ${err}`)));
  });
}

export function kill9(r: Running): Promise<void> {
  return new Promise((resolve) => {
    r.child.removeAllListeners('exit');
    r.child.on('exit', () => resolve());
    r.child.kill('SIGKILL');
  });
}

