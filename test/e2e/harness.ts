/**
 * Real `lethe` processes for the end-to-end tests: each runs the built entry point dist/cli/main.js, with its output
 * kept for assertions and a way to wait for a line. Tests run the built dist/, so a stale build is refused with a
 * clear message (npm test builds first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The `lethe` executable the tests start (what `npm run demo` and the bin entry run). */
export const LETHE_MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function newestMtime(dir: string): number {
  return Math.max(...readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((name) => statSync(join(dir, name)).mtimeMs));
}

/** Throws unless dist/ holds a build at least as new as the sources these tests exercise. */
export function requireFreshBuild(): void {
  for (const part of ['client', 'demo', 'cli']) {
    const built = join(ROOT, 'dist', part);
    if (!existsSync(built) || newestMtime(built) < newestMtime(join(ROOT, 'src', part))) {
      throw new Error(`dist/${part} is missing or older than src/${part}: run \`npx tsc -p .\` first`);
    }
  }
}

export interface LetheProcess {
  readonly child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  stdout(): string;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
  waitFor(pattern: RegExp, ms: number): Promise<RegExpMatchArray>;
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Starts `lethe <args>` as a child process. */
export function lethe(args: readonly string[], env: NodeJS.ProcessEnv = {}): LetheProcess {
  const child = spawn(process.execPath, [LETHE_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let all = '';
  let out = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    all += s;
    out += s;
    for (const w of [...waiters]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    all += s;
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  void exited.then(() => {
    for (const w of [...waiters]) w();
  });
  const handle: LetheProcess = {
    child,
    output: () => all,
    stdout: () => out,
    exited,
    waitFor(pattern, ms) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`timed out after ${ms} ms waiting for ${pattern} from lethe ${args.join(' ')}:\n${all.slice(-3000)}`)), ms);
        const finish = (err?: Error, m?: RegExpMatchArray): void => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve(m!);
        };
        const check = (): void => {
          const m = pattern.exec(all);
          if (m) finish(undefined, m);
          else if (child.exitCode !== null || child.signalCode !== null) finish(new Error(`lethe ${args.join(' ')} exited before printing ${pattern}:\n${all.slice(-3000)}`));
        };
        waiters.add(check);
        check();
      });
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  return handle;
}

/** A TCP port that was free a moment ago (for a coordinator that must come back on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** The JSON event lines a `client run --json` process printed. */
export function events(p: LetheProcess): { type: string; [k: string]: unknown }[] {
  return p
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type: string });
}

export async function waitUntil<T>(check: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** For a failed test: the tail of what the coordinator and each client process printed. */
export function printOutputs(coordinator: LetheProcess | undefined, clients: readonly LetheProcess[]): void {
  process.stderr.write(`--- coordinator output ---\n${coordinator?.output().slice(-4000)}\n`);
  clients.forEach((c, i) => process.stderr.write(`--- client ${i} output ---\n${c.output().slice(-3000)}\n`));
}

/** Teardown: SIGKILL every process of the scenario (the state dies with the temp dir). */
export async function killAll(coordinator: LetheProcess | undefined, clients: readonly LetheProcess[]): Promise<void> {
  await Promise.all([...clients.map((c) => c.kill('SIGKILL')), coordinator?.kill('SIGKILL')]);
}
