/**
 * The shape of a `lethe` sub-command. Each lives in src/cli/commands/<name>.ts and is listed once in registry.ts.
 * Commands parse their own flags (node:util parseArgs) and throw UsageError for bad input: main prints the message
 * and exits 2, so a user always learns what was wrong.
 */
export interface Command {
  /** Words that select it, e.g. ['privacy', 'epsilon']. */
  readonly path: readonly string[];
  readonly summary: string;
  /** Flags, one line, shown by `lethe help`. */
  readonly usage: string;
  /**
   * 'restart': the command allocates large buffers in its own process, so `lethe` starts it again with huge pages and
   * the heap floor when they were not decided (src/memory-tuning.ts: both are read only as a process starts).
   */
  readonly memoryTuning?: 'restart';
  /** Runs with the arguments after the command path; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}

/** Bad command-line input: the message says what was wrong and how to fix it. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses a flag value as a finite number, or throws a UsageError naming the flag. */
export function numberFlag(name: string, value: string | undefined, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${value}"`);
  return n;
}
