/**
 * Real coordinator processes on NATS for the cluster tests: `node dist/cli/main.js coordinator start --nats …` (npm
 * test builds dist/ first), a private nats-server when a test must kill it, and bucket cleanup per prefix.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { connect } from 'nats';

export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** A bucket prefix no other test (or test run) uses. */
export function freshPrefix(tag: string): string {
  return `lethe_${tag}_${process.pid}_${randomBytes(3).toString('hex')}`;
}

/** Deletes every stream (KV bucket or object store) of `prefix`: the store's and the cluster's. */
export async function destroyPrefix(servers: string, prefix: string): Promise<void> {
  const nc = await connect({ servers, timeout: 2000 });
  try {
    const jsm = await nc.jetstreamManager();
    const names: string[] = [];
    for await (const info of jsm.streams.list()) names.push(info.config.name);
    const ours = names.filter((n) => n.startsWith(`KV_${prefix}_`) || n.startsWith(`OBJ_${prefix}_`));
    await Promise.all(ours.map((n) => jsm.streams.delete(n).catch(() => false)));
  } finally {
    await nc.close();
  }
}

export class CoordinatorProcess {
  private text = '';
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<void>;

  constructor(
    readonly child: ChildProcess,
    readonly name: string,
  ) {
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.text += s;
      for (const wake of [...this.waiters]) wake();
    });
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get log(): string {
    return this.text;
  }

  /** Resolves with the first match of `pattern` in the log (waiting for it up to `ms`). */
  waitForLog(pattern: RegExp, ms = 15_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = pattern.exec(this.text);
        if (m) resolve(m);
        return m !== null;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        reject(new Error(`${this.name}: no log line matching ${pattern} within ${ms} ms; log:\n${this.text}`));
      }, ms);
      const wake = (): void => {
        if (check()) {
          clearTimeout(timer);
          this.waiters.delete(wake);
        }
      };
      this.waiters.add(wake);
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

/** Starts `lethe coordinator start --nats …` and resolves once it listens, with its address and coordinator id. */
export async function startCoordinator(
  name: string,
  options: { readonly dataDir: string; readonly servers: string; readonly prefix: string },
): Promise<{ process: CoordinatorProcess; address: string; id: string }> {
  if (!existsSync(CLI)) throw new Error('dist/cli/main.js is missing: run `npx tsc -p .` (npm test builds first)');
  const child = spawn(
    process.execPath,
    [CLI, 'coordinator', 'start', '--data-dir', options.dataDir, '--port', '0', '--nats', options.servers, '--bucket-prefix', options.prefix],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const proc = new CoordinatorProcess(child, name);
  const m = await Promise.race([
    proc.waitForLog(/coordinator (\S+) listening on (\S+) /, 30_000),
    proc.exited.then(() => Promise.reject(new Error(`${name} exited before listening:\n${proc.log}`))),
  ]);
  return { process: proc, id: m[1]!, address: m[2]! };
}

/** A port nothing listens on (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Our own nats-server with JetStream on `port`, storing in `dir` (so a restart finds the same data). */
export async function startNatsServer(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(process.env.NATS_SERVER ?? 'nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
  await waitForPort(port);
  return child;
}

export function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** Retries `fn` until it stops throwing, up to `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 15_000, pauseMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }
}
