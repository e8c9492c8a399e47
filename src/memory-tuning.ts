/**
 * Memory settings a process takes only as it starts, which Lethe sets on the processes it starts (the demo's and
 * benchmarks' coordinators and clients, `lethe bench` itself), deploy/ sets for its services, and `lethe coordinator
 * start` / `lethe client run` name when they run without them.
 *
 * Huge pages: glibc's malloc tunable `glibc.malloc.hugetlb=1` (glibc ≥ 2.35; other C libraries and older glibcs
 * ignore it), read from GLIBC_TUNABLES at start. Node allocates every ArrayBuffer with malloc; with the tunable,
 * malloc asks the kernel for huge pages (madvise MADV_HUGEPAGE) on the memory it maps, so the first write to a fresh
 * 32 MiB update buffer costs 16 page faults instead of 8,192. Where the kernel's THP mode is `madvise` (Ubuntu's
 * default, and the virtual machines our benchmarks run on) page faults dominated what the coordinator spent per
 * received byte: a first write to fresh memory ran at 0.3 GB/s without the tunable and 3.5 GB/s with it, and ingest
 * went from ~60 to ~100–170 MB/s (BENCHMARKS.md). Where THP is `always` it changes nothing, nor where it is `never`.
 * Update payloads and aggregation outputs have since moved to wasm memories (tensors/page-aligned.ts), which V8 maps
 * itself and the tunable does not reach; the rest (received messages, encoded chunks, tensors) still gained: ingest
 * 276–319 MB/s with it against 190–290 without, in a later A/B.
 *
 * The coordinator's heap floor: V8's `--initial-old-space-size`, which V8 takes only on the command line (not from
 * NODE_OPTIONS, nor from v8.setFlagsFromString once the heap exists). V8 starts a full collection when the old
 * generation's objects plus the ArrayBuffer memory allocated since the last one come within the young generation's
 * size of a limit it derives from the live heap. A coordinator holds ~40 MB of objects, so the limit settled near
 * 63 MB, and every ~8 MB of received upload (grpc-js allocates each 1 MiB message afresh) then started one: in about
 * half of the ingest benchmark's runs, 25 full collections a round (~250 ms of the event loop's time, marking
 * included), and 320–340 MB/s against 450–500. The flag makes the limit at least this many MiB: 2 full collections
 * in the same run, 460–500 MB/s in every run (BENCHMARKS.md). Memory that is garbage may grow this much before it is
 * collected, so clients, some of which run on little memory, do not get it.
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

/** The coordinator's heap floor in MiB (see above), and the node flag that sets it. */
export const HEAP_FLOOR_MIB = 256;
export const HEAP_FLOOR_FLAG = `--initial-old-space-size=${HEAP_FLOOR_MIB}`;

const INITIAL_OLD_SPACE = /^--initial[-_]old[-_]space[-_]size(=|$)/;

/** True when node's flags already set the initial old space, either way (a user's own size is respected). */
export function heapFloorDecided(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((a) => INITIAL_OLD_SPACE.test(a));
}

/** `execArgv` with the heap floor added (unchanged when it already decides the initial old space). */
export function withHeapFloor(execArgv: readonly string[] = process.execArgv): readonly string[] {
  return heapFloorDecided(execArgv) ? execArgv : [...execArgv, HEAP_FLOOR_FLAG];
}

/** `execArgv` without any initial old space (for processes that stand for clients, such as benchmark senders). */
export function withoutHeapFloor(execArgv: readonly string[] = process.execArgv): string[] {
  return execArgv.filter((a) => !INITIAL_OLD_SPACE.test(a));
}

/** One line for the coordinator's startup output when it runs without the heap floor; else undefined. */
export function heapFloorHint(execArgv: readonly string[] = process.execArgv): string | undefined {
  if (heapFloorDecided(execArgv)) return undefined;
  return `memory: started without ${HEAP_FLOOR_FLAG}; with it (node ${HEAP_FLOOR_FLAG} …/cli/main.js coordinator start) large uploads cause far fewer full garbage collections (deploy/ sets it)`;
}

/** Whether this process lacks a memory setting it could have had at start (huge pages, the heap floor). */
export function memoryTuningMissing(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): boolean {
  return hugePagesMissing(env) || !heapFloorDecided(execArgv);
}

/**
 * Runs `node [execArgv + heap floor] script args` with the huge-page tunable set, output shared, and resolves with its
 * exit code (128 + the signal's number when a signal ended it). Ctrl-C reaches the child from the terminal; SIGTERM
 * and SIGHUP sent to this process are passed on.
 */
export async function runWithMemoryTuning(script: string, args: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, [...withHeapFloor(process.execArgv), script, ...args], { stdio: 'inherit', env: withHugePages(process.env) });
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
