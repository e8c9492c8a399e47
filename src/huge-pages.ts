/**
 * Transparent huge pages for large buffers, through glibc's malloc tunable `glibc.malloc.hugetlb=1` (glibc ≥ 2.35;
 * other C libraries and older glibcs ignore it). Node allocates every ArrayBuffer with malloc; with the tunable,
 * malloc asks the kernel for huge pages (madvise MADV_HUGEPAGE) on the memory it maps, so the first write to a fresh
 * 32 MiB update buffer costs 16 page faults instead of 8,192. Where the kernel's THP mode is `madvise` (Ubuntu's
 * default, and the virtual machines our benchmarks run on) page faults dominate what the coordinator spends per
 * received byte: a first write to fresh memory ran at 0.3 GB/s without the tunable and 3.5 GB/s with it, and ingest
 * went from ~60 to ~100–170 MB/s (BENCHMARKS.md). Where THP is `always` it changes nothing, nor where it is `never`.
 * Update payloads and aggregation outputs have since moved to wasm memories (tensors/page-aligned.ts), which V8 maps
 * itself and the tunable does not reach; the rest (received messages, encoded chunks, tensors) still gains: ingest
 * 276–319 MB/s with it against 190–290 without, in a later A/B.
 *
 * glibc reads tunables once, as the process starts: they cannot be switched on from inside. So Lethe sets them on
 * the processes it starts (the demo's coordinator and clients, the benchmarks), deploy/ sets them for services, and
 * `lethe coordinator start` / `lethe client run` say so when they run without them.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';

export const HUGE_PAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

/** True when GLIBC_TUNABLES already decides huge pages, either way (an explicit `hugetlb=0` is respected). */
export function hugePagesDecided(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env['GLIBC_TUNABLES'] ?? '').split(':').some((t) => t.startsWith('glibc.malloc.hugetlb='));
}

/** `env` with the huge-page tunable added to whatever GLIBC_TUNABLES it holds (unchanged when it already decides). */
export function withHugePages(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (hugePagesDecided(env)) return env;
  const current = env['GLIBC_TUNABLES'];
  return { ...env, GLIBC_TUNABLES: current ? `${current}:${HUGE_PAGES_TUNABLE}` : HUGE_PAGES_TUNABLE };
}

/** The glibc this process runs on ("2.36"), or undefined on another C library or platform. */
export function glibcVersion(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  return header?.glibcVersionRuntime;
}

/** Whether this process's glibc knows the tunable (2.35 and later). */
export function glibcHasHugePageTunable(version: string | undefined): boolean {
  const [major, minor] = (version ?? '').split('.').map(Number);
  return major !== undefined && minor !== undefined && (major > 2 || (major === 2 && minor >= 35));
}

/** Whether this process runs without the tunable on a glibc that has it (so it could have huge pages and does not). */
export function hugePagesMissing(env: NodeJS.ProcessEnv = process.env): boolean {
  return !hugePagesDecided(env) && glibcHasHugePageTunable(glibcVersion());
}

/** One line for a service's startup output when huge pages are missing (hugePagesMissing); else undefined. */
export function hugePagesHint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!hugePagesMissing(env)) return undefined;
  return `memory: GLIBC_TUNABLES is not set; with GLIBC_TUNABLES=${HUGE_PAGES_TUNABLE} large tensor buffers use huge pages (faster ingest where THP is "madvise"; deploy/ sets it)`;
}

/**
 * Runs `node [execArgv] script args` with the tunable set, output shared, and resolves with its exit code (128 + the
 * signal's number when a signal ended it). Ctrl-C reaches the child from the terminal; SIGTERM and SIGHUP sent to
 * this process are passed on.
 */
export async function runWithHugePages(script: string, args: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: 'inherit', env: withHugePages(process.env) });
  const pass = (signal: NodeJS.Signals): void => void child.kill(signal);
  const ignore = (): void => undefined;
  process.on('SIGTERM', pass).on('SIGHUP', pass).on('SIGINT', ignore);
  try {
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    return code ?? 128 + (signal ? constants.signals[signal] : 0);
  } finally {
    process.off('SIGTERM', pass).off('SIGHUP', pass).off('SIGINT', ignore);
  }
}
