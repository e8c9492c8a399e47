/**
 * The demo's child processes (a coordinator and its clients, each a real `lethe` process): started with their output
 * in log files, watched for a line, and stopped together — SIGTERM, then SIGKILL after a grace period — on success,
 * failure, Ctrl-C or SIGTERM, so the demo never leaves orphans behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { withHugePages } from '../memory-tuning.js';

export interface ChildHandle {
  readonly name: string;
  readonly process: ChildProcess;
  readonly logPath: string;
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** Resolves with the first match of `pattern` in the child's stdout or stderr; rejects when it exits first or after `timeoutMs`. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
}

export class ProcessGroup {
  private readonly children = new Set<ChildHandle>();
  private stopping: Promise<void> | undefined;

  /**
   * @param command the executable (process.execPath) and the script before the arguments (the lethe entry point)
   */
  constructor(
    private readonly command: { readonly executable: string; readonly script: string },
    /** Default: this process's, with huge pages for the children's large buffers (src/memory-tuning.ts). */
    private readonly env: NodeJS.ProcessEnv = withHugePages(process.env),
  ) {}

  get running(): readonly ChildHandle[] {
    return [...this.children];
  }

  /** Starts `node [nodeFlags] lethe <args>`; its stdout and stderr go to `logPath`. */
  spawn(name: string, args: readonly string[], logPath: string, nodeFlags: readonly string[] = []): ChildHandle {
    if (this.stopping) throw new Error(`cannot start ${name}: the process group is stopping`);
    const child = spawn(this.command.executable, [...nodeFlags, this.command.script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env });
    const log: WriteStream = createWriteStream(logPath, { flags: 'a' });
    const watchers = new Set<(text: string) => void>();
    let seen = '';
    const onData = (chunk: Buffer): void => {
      log.write(chunk);
      const text = chunk.toString('utf8');
      seen = (seen + text).slice(-65_536); // a line may arrive in pieces
      for (const w of watchers) w(seen);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const exited = new Promise<number | string>((resolve) => {
      // 'close', not 'exit': by then its output has been read to the end, so a failure can quote its last words.
      child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      child.once('error', (err) => resolve(`spawn error: ${err.message}`));
    });
    const handle: ChildHandle = {
      name,
      process: child,
      logPath,
      exited,
      waitForLine(pattern, timeoutMs) {
        return new Promise((resolve, reject) => {
          const check = (text: string): void => {
            const m = pattern.exec(text);
            if (!m) return;
            done();
            resolve(m);
          };
          const timer = setTimeout(() => {
            done();
            reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms${lastWords(seen)}; see ${logPath}`));
          }, timeoutMs);
          const done = (): void => {
            clearTimeout(timer);
            watchers.delete(check);
          };
          void exited.then((code) => {
            if (!watchers.has(check)) return;
            done();
            reject(new Error(`${name} exited (${code}) before printing ${pattern}${lastWords(seen)}; see ${logPath}`));
          });
          watchers.add(check);
          check(seen);
        });
      },
    };
    this.children.add(handle);
    void exited.then(() => {
      this.children.delete(handle);
      log.end();
    });
    return handle;
  }

  /** Sends SIGTERM to one child and waits for it, with SIGKILL after `graceMs`. */
  async stop(child: ChildHandle, graceMs = 5_000): Promise<void> {
    if (child.process.exitCode !== null || child.process.signalCode !== null) return;
    child.process.kill('SIGTERM');
    const timer = setTimeout(() => child.process.kill('SIGKILL'), graceMs);
    await child.exited;
    clearTimeout(timer);
  }

  /** Stops every child still running, all at once. Idempotent. */
  stopAll(graceMs = 5_000): Promise<void> {
    this.stopping ??= Promise.all(this.running.map((c) => this.stop(c, graceMs))).then(() => undefined);
    return this.stopping;
  }

  /** Last resort on process exit: SIGKILL whatever still runs (synchronous, for the 'exit' event). */
  killAllNow(): void {
    for (const c of this.children) c.process.kill('SIGKILL');
  }
}

/** Waits for `ms`, or less when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * ': "<the child's last words>"', or '' when it printed nothing: its last line that is neither a stack frame nor Node's
 * version banner, which for a failing lethe command is its reason (`lethe <command>: <error>`).
 */
function lastWords(output: string): string {
  const said = output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !/^at /.test(l) && !/^Node\.js v\d/.test(l))
    .at(-1);
  return said === undefined ? '' : `: "${said}"`;
}
