/**
 * `lethe bench privacy [--parts sample,central] [--json] …`: the utility of Lethe's DP mechanisms on the demo task.
 *   - sample:  DP-SGD at the target ε (default 8, δ 1e-5) against the same run without DP (privacy-sample.ts);
 *   - central: DP-FedAvg with a simulated population (default 500 clients, q 0.1), accuracy per ε (privacy-central.ts).
 * Prints one JSON line for the sample comparison and one per ε of the central curve. Progress goes to stderr.
 */
import { UsageError, numberFlag } from '../cli/command.js';
import { type Flags, intFlag, parseFlags, positiveFlag, resolveDataDir, startBackend, str } from '../cli/flags.js';
import { CENTRAL_DP_DEFAULTS, type CentralDpBenchOptions, type CentralDpPoint, benchCentralDp } from './privacy-central.js';
import { SAMPLE_DP_DEFAULTS, type SampleDpBenchOptions, type SampleDpBenchResult, benchSampleDp } from './privacy-sample.js';

export const PRIVACY_PARTS = ['sample', 'central'] as const;
export type PrivacyPart = (typeof PRIVACY_PARTS)[number];

export interface PrivacyBenchOptions {
  readonly parts: readonly PrivacyPart[];
  readonly sample: SampleDpBenchOptions;
  readonly central: CentralDpBenchOptions;
}

export interface PrivacyBenchResult {
  readonly sample?: SampleDpBenchResult;
  readonly central?: CentralDpPoint[];
}

export async function benchPrivacy(opts: PrivacyBenchOptions): Promise<PrivacyBenchResult> {
  return {
    ...(opts.parts.includes('sample') ? { sample: await benchSampleDp(opts.sample) } : {}),
    ...(opts.parts.includes('central') ? { central: await benchCentralDp(opts.central) } : {}),
  };
}

export const PRIVACY_BENCH_USAGE =
  '[--parts sample,central] [--epsilon 8] [--steps 40] [--batch 512] [--lr 1e-2] [--clip 5] [--limit N] ' +
  '[--epsilons 1,2,4,8,inf] [--clients 500] [--q 0.1] [--rounds 20] [--central-clip 0.5] [--local-steps 2] [--local-lr 5e-3] [--server-lr 1] [--data-dir DIR] [--backend NAME] [--json]';

/** The suite's options from its flags (defaults: SAMPLE_DP_DEFAULTS, CENTRAL_DP_DEFAULTS). */
export function privacyBenchOptions(flags: Flags, onProgress?: (line: string) => void): PrivacyBenchOptions {
  const parts = (str(flags.parts) ?? PRIVACY_PARTS.join(',')).split(',');
  const bad = parts.find((p) => !(PRIVACY_PARTS as readonly string[]).includes(p));
  if (bad !== undefined) throw new UsageError(`--parts: unknown part "${bad}"; expected some of ${PRIVACY_PARTS.join(', ')}`);
  const dataDir = resolveDataDir(str(flags['data-dir']));
  const positive = (name: string, fallback: number): number => positiveFlag(name, flags[name], fallback);
  const s = SAMPLE_DP_DEFAULTS;
  const c = CENTRAL_DP_DEFAULTS;
  const epsilons = str(flags.epsilons)
    ?.split(',')
    .map((e) => (e === 'inf' ? Number.POSITIVE_INFINITY : numberFlag('epsilons', e)));
  if (epsilons?.some((e) => !(e > 0))) throw new UsageError(`--epsilons must be positive numbers or "inf", got ${str(flags.epsilons)}`);
  const q = positive('q', c.samplingRate);
  if (q > 1) throw new UsageError(`--q must be in (0, 1], got ${q}`);
  return {
    parts: parts as PrivacyPart[],
    sample: {
      ...s,
      dataDir,
      epsilon: positive('epsilon', s.epsilon),
      steps: intFlag('steps', flags.steps, s.steps),
      batch: intFlag('batch', flags.batch, s.batch),
      lr: positive('lr', s.lr),
      clip: positive('clip', s.clip),
      limit: flags.limit === undefined ? s.limit : intFlag('limit', flags.limit, 1),
      ...(onProgress ? { onProgress } : {}),
    },
    central: {
      ...c,
      dataDir,
      epsilons: epsilons ?? c.epsilons,
      clients: intFlag('clients', flags.clients, c.clients),
      samplingRate: q,
      rounds: intFlag('rounds', flags.rounds, c.rounds),
      clip: positive('central-clip', c.clip),
      localSteps: intFlag('local-steps', flags['local-steps'], c.localSteps),
      lr: positive('local-lr', c.lr),
      serverLr: positive('server-lr', c.serverLr),
      ...(onProgress ? { onProgress } : {}),
    },
  };
}

/** `lethe bench privacy …` (bench.ts SUITES calls this with the arguments after the suite name). */
export async function benchPrivacyMain(argv: string[]): Promise<number> {
  const names = ['parts', 'epsilon', 'steps', 'batch', 'lr', 'clip', 'limit', 'epsilons', 'clients', 'q', 'rounds', 'central-clip', 'local-steps', 'local-lr', 'server-lr', 'data-dir', 'backend'];
  const flags = parseFlags(argv, { json: { type: 'boolean' }, ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])) });
  const opts = privacyBenchOptions(flags, (line) => process.stderr.write(`${line}\n`));
  await startBackend(str(flags.backend));
  const result = await benchPrivacy(opts);
  const lines: object[] = [...(result.sample ? [result.sample] : []), ...(result.central ?? [])];
  for (const line of lines) {
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(line)}\n`);
      continue;
    }
    for (const [k, v] of Object.entries(line)) process.stdout.write(`${k.padEnd(22)} ${typeof v === 'number' ? +v.toPrecision(5) : String(v)}\n`);
    process.stdout.write('\n');
  }
  return 0;
}
