/**
 * src/memory-tuning.ts: the glibc tunable that gives large buffers transparent huge pages, set on the processes Lethe
 * starts, and the coordinator's heap floor (a node flag). The fault counts are real: a child process fills a fresh
 * 32 MiB buffer and reports its minor page faults.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessGroup } from '../src/demo/processes.js';
import {
  glibcHasHugePageTunable,
  glibcVersion,
  HEAP_FLOOR_FLAG,
  heapFloorDecided,
  heapFloorHint,
  HUGE_PAGES_TUNABLE,
  hugePagesDecided,
  hugePagesHint,
  memoryTuningMissing,
  runWithMemoryTuning,
  withHeapFloor,
  withHugePages,
  withoutHeapFloor,
} from '../src/memory-tuning.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Prints GLIBC_TUNABLES and the minor page faults of filling a fresh 32 MiB buffer; exits with argv[2]. */
const FILL_SCRIPT = `
const before = process.resourceUsage().minorPageFault;
Buffer.allocUnsafeSlow(32 << 20).fill(1);
const faults = process.resourceUsage().minorPageFault - before;
process.stdout.write(JSON.stringify({ tunables: process.env.GLIBC_TUNABLES ?? null, execArgv: process.execArgv, faults }) + '\\n');
process.exitCode = Number(process.argv[2] ?? 0);
`;

function thpMode(): string | undefined {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

let dir: string;
let script: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lethe-huge-pages-'));
  script = join(dir, 'fill.cjs');
  await writeFile(script, FILL_SCRIPT);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface FillReport {
  readonly tunables: string | null;
  readonly execArgv: readonly string[];
  readonly faults: number;
}

/** The fill script writing its report to a file (runWithMemoryTuning shares this process's stdout with the child). */
async function reportingScript(name: string): Promise<{ script: string; read: () => FillReport }> {
  const report = join(dir, `${name}.json`);
  const path = join(dir, `${name}.cjs`);
  await writeFile(path, FILL_SCRIPT.replace('process.stdout.write(', `require('fs').writeFileSync(${JSON.stringify(report)}, `));
  return { script: path, read: () => JSON.parse(readFileSync(report, 'utf8')) as FillReport };
}

/** Runs the fill script without the tunable; resolves with its report. */
function plainFill(): Promise<FillReport> {
  const env = { ...process.env };
  delete env['GLIBC_TUNABLES'];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(JSON.parse(out)));
  });
}

describe('huge pages', () => {
  it('withHugePages – adds the tunable to GLIBC_TUNABLES, keeps the ones already there, and leaves an explicit choice alone', () => {
    expect(withHugePages({ PATH: '/bin' })).toEqual({ PATH: '/bin', GLIBC_TUNABLES: HUGE_PAGES_TUNABLE });
    expect(withHugePages({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' })['GLIBC_TUNABLES']).toBe(`glibc.malloc.arena_max=2:${HUGE_PAGES_TUNABLE}`);
    const off = { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' };
    expect(withHugePages(off)).toBe(off);
    expect(hugePagesDecided(off)).toBe(true);
    expect(hugePagesDecided({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' })).toBe(false);
    expect(hugePagesHint(off)).toBeUndefined();
  });

  it('heap floor – is added once, respects a size the user chose, is left off for clients, and is named when missing', () => {
    expect(withHeapFloor(['--inspect'])).toEqual(['--inspect', HEAP_FLOOR_FLAG]);
    expect(heapFloorDecided(withHeapFloor([]))).toBe(true);
    const own = ['--initial_old_space_size=512'];
    expect(withHeapFloor(own)).toBe(own);
    expect(heapFloorHint(own)).toBeUndefined();
    expect(heapFloorHint([])).toContain(HEAP_FLOOR_FLAG);
    expect(withoutHeapFloor(['--inspect', HEAP_FLOOR_FLAG, ...own])).toEqual(['--inspect']);
    expect(memoryTuningMissing({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }, [])).toBe(true);
    expect(memoryTuningMissing({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }, [HEAP_FLOOR_FLAG])).toBe(false);
  });

  it('glibcHasHugePageTunable – is true from glibc 2.35 on and false for older or no glibc', () => {
    expect(glibcHasHugePageTunable('2.35')).toBe(true);
    expect(glibcHasHugePageTunable('2.36')).toBe(true);
    expect(glibcHasHugePageTunable('3.0')).toBe(true);
    expect(glibcHasHugePageTunable('2.34')).toBe(false);
    expect(glibcHasHugePageTunable(undefined)).toBe(false);
  });

  it('runWithMemoryTuning – starts the script with the tunable and the heap floor set and returns its exit code', async () => {
    const { script: wrapped, read } = await reportingScript('exit');
    expect(await runWithMemoryTuning(wrapped, ['7'])).toBe(7);
    expect(read().tunables?.split(':')).toContain(HUGE_PAGES_TUNABLE);
    expect(read().execArgv).toContain(HEAP_FLOOR_FLAG);
  });

  it('ProcessGroup – starts the demo\'s and benchmarks\' child processes with the tunable, and the node flags asked for', async () => {
    const printer = join(dir, 'print.cjs');
    await writeFile(printer, `console.log('tunables=' + process.env.GLIBC_TUNABLES + ' flags=' + process.execArgv.join(',')); setTimeout(() => undefined, 60_000);`);
    const group = new ProcessGroup({ executable: process.execPath, script: printer });
    try {
      const plain = group.spawn('printer', [], join(dir, 'printer.log'));
      const [, tunables, flags] = (await plain.waitForLine(/tunables=(\S+) flags=(\S*)/, 10_000)) as RegExpMatchArray;
      expect(tunables!.split(':')).toContain(HUGE_PAGES_TUNABLE);
      expect(flags).toBe('');
      const floored = group.spawn('coordinator', [], join(dir, 'coordinator.log'), [HEAP_FLOOR_FLAG]);
      expect((await floored.waitForLine(/flags=(\S*)/, 10_000))[1]).toBe(HEAP_FLOOR_FLAG);
    } finally {
      await group.stopAll(1_000);
    }
  });

  it('lethe bench starts itself again with the tunable and the heap floor; a command without large buffers does not', async () => {
    // A preload script records each lethe process's GLIBC_TUNABLES and node flags as it starts.
    const log = join(dir, 'starts.log');
    const preload = join(dir, 'record.cjs');
    await writeFile(preload, `require('fs').appendFileSync(${JSON.stringify(log)}, (process.env.GLIBC_TUNABLES ?? '-') + ' ' + (process.execArgv.join(',') || '-') + '\\n');`);
    const lethe = (args: string[]): Promise<number | null> => {
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: `--require ${preload}` };
      delete env['GLIBC_TUNABLES'];
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [join(ROOT, 'dist/cli/main.js'), ...args], { env, stdio: 'ignore' });
        child.on('error', reject);
        child.on('close', resolve);
      });
    };
    expect(await lethe(['bench', 'no-such-suite'])).toBe(2); // the usage error, from the restarted process
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['- -', `${HUGE_PAGES_TUNABLE} ${HEAP_FLOOR_FLAG}`]);
    await rm(log);
    expect(await lethe(['privacy', 'epsilon', '--no-such-flag'])).toBe(2);
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['- -']);
  });

  it.skipIf(!glibcHasHugePageTunable(glibcVersion()) || thpMode() === 'never' || thpMode() === undefined)(
    'a process started with the tunable takes far fewer page faults to fill a fresh 32 MiB buffer',
    async () => {
      const { script: wrapped, read } = await reportingScript('faults');
      expect(await runWithMemoryTuning(wrapped, [])).toBe(0);
      const huge = read();
      const plain = await plainFill();
      expect(plain.tunables).toBeNull();
      // 8,192 four-KiB pages without; 16 two-MiB pages (plus a few small ones) with, where THP is available.
      if (thpMode() === 'madvise') {
        expect(plain.faults).toBeGreaterThan(8000);
        expect(huge.faults).toBeLessThan(plain.faults / 8);
      } else {
        expect(huge.faults).toBeLessThanOrEqual(plain.faults * 1.1);
      }
    },
  );
});
