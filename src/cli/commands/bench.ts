/**
 * `lethe bench SUITE [--json] …` (`npm run bench -- SUITE --json`): each suite prints one JSON line with --json, the
 * numbers BENCHMARKS.md records. Suites measure ratios against a baseline taken in the same run, since machines are
 * noisy.
 */
import { type Command, UsageError } from '../command.js';
import { intFlag, parseFlags, positiveFlag, resolveDataDir, str } from '../flags.js';

function print(result: object, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  for (const [k, v] of Object.entries(result)) process.stdout.write(`${k.padEnd(26)} ${typeof v === 'number' ? +v.toPrecision(5) : String(v)}\n`);
}

const SUITES: Readonly<Record<string, { usage: string; run(argv: string[]): Promise<number> }>> = {
  train: {
    usage: '[--backend NAME] [--json]',
    async run(argv) {
      const { benchTrainMain } = await import('../../bench/train.js');
      return benchTrainMain(argv);
    },
  },
  aggregate: {
    usage: '[--round-clients 200] [--ingest-mib 32] [--json]',
    async run(argv) {
      const values = parseFlags(argv, { json: { type: 'boolean' }, 'round-clients': { type: 'string' }, 'ingest-mib': { type: 'string' } });
      const { benchAggregate } = await import('../../bench/aggregate.js');
      const result = await benchAggregate({
        roundClients: intFlag('round-clients', values['round-clients'], 200),
        ingestBytes: positiveFlag('ingest-mib', values['ingest-mib'], 32) * 2 ** 20,
      });
      print(result, values.json === true);
      return 0;
    },
  },
  nats: {
    usage: '[--nats nats://127.0.0.1:4222[,…]] [--round-clients 1000] [--ingest-mib 16] [--ingest-clients 4] [--json]',
    async run(argv) {
      const values = parseFlags(argv, {
        json: { type: 'boolean' },
        nats: { type: 'string' },
        'round-clients': { type: 'string' },
        'ingest-mib': { type: 'string' },
        'ingest-clients': { type: 'string' },
      });
      const { benchNats } = await import('../../bench/nats.js');
      const result = await benchNats({
        servers: (str(values.nats) ?? 'nats://127.0.0.1:4222').split(','),
        roundClients: intFlag('round-clients', values['round-clients'], 1000),
        ingestBytes: positiveFlag('ingest-mib', values['ingest-mib'], 16) * 2 ** 20,
        ingestClients: intFlag('ingest-clients', values['ingest-clients'], 4),
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      print(result, values.json === true);
      return 0;
    },
  },
  comms: {
    usage: '[--json]',
    async run(argv) {
      const values = parseFlags(argv, { json: { type: 'boolean' } });
      const { benchComms } = await import('../../bench/comms.js');
      const { loadLetheProto } = await import('../../wire/proto.js');
      print(benchComms(loadLetheProto()), values.json === true);
      return 0;
    },
  },
  curves: {
    usage: '[--rounds 6] [--modes backprop,mezo-seeds,essa] [--data-dir DIR] [--json]',
    async run(argv) {
      const values = parseFlags(argv, { json: { type: 'boolean' }, rounds: { type: 'string' }, modes: { type: 'string' }, 'data-dir': { type: 'string' } });
      const { CURVE_MODES, federatedCurves } = await import('../../bench/curves.js');
      const modes = (str(values.modes) ?? CURVE_MODES.join(',')).split(',');
      const bad = modes.find((m) => !(CURVE_MODES as readonly string[]).includes(m));
      if (bad !== undefined) throw new UsageError(`--modes: unknown mode "${bad}"; expected some of ${CURVE_MODES.join(', ')}`);
      const { initBackend } = await import('../../backend/backend.js');
      await initBackend();
      const curves = await federatedCurves({
        dataDir: resolveDataDir(str(values['data-dir'])),
        rounds: intFlag('rounds', values.rounds, 6),
        modes: modes as (typeof CURVE_MODES)[number][],
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      for (const c of curves) print(c, values.json === true);
      return 0;
    },
  },
  memory: {
    usage: '[--backend NAME] [--json]',
    async run(argv) {
      const values = parseFlags(argv, { json: { type: 'boolean' }, backend: { type: 'string' } });
      const { initBackend, parseBackendName } = await import('../../backend/backend.js');
      const { benchMemory } = await import('../../bench/memory.js');
      const backend = str(values.backend);
      const choice = await initBackend(backend === undefined ? undefined : parseBackendName(backend));
      print(await benchMemory(choice.backend), values.json === true);
      return 0;
    },
  },
  privacy: {
    usage: '[--parts sample,central] [--json] (flags: src/bench/privacy.ts)',
    async run(argv) {
      const { benchPrivacyMain } = await import('../../bench/privacy.js');
      return benchPrivacyMain(argv);
    },
  },
  unlearning: {
    usage: '[--data-dir DIR] [--generic-examples 400] [--json]',
    async run(argv) {
      const values = parseFlags(argv, { json: { type: 'boolean' }, 'data-dir': { type: 'string' }, 'generic-examples': { type: 'string' } });
      // The client's other mails the detector and gate are calibrated against; more of them cost serving time.
      const genericExamples = intFlag('generic-examples', values['generic-examples'], 400);
      const { benchUnlearning } = await import('../../bench/unlearning.js');
      const { initBackend } = await import('../../backend/backend.js');
      await initBackend();
      const json = values.json === true;
      const result = await benchUnlearning({
        dataDir: resolveDataDir(str(values['data-dir'])),
        genericExamples,
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      print(result, json);
      return 0;
    },
  },
};

export const benchCommand: Command = {
  path: ['bench'],
  // Some suites run a coordinator in this process: measure it with the memory settings deploy/ gives it.
  memoryTuning: 'restart',
  summary: `benchmarks: ${Object.keys(SUITES).join(', ')} (one JSON line each with --json)`,
  usage: `SUITE [--json] — ${Object.entries(SUITES).map(([k, s]) => `${k} ${s.usage}`).join('; ')}`,
  async run(argv) {
    const [suite, ...rest] = argv;
    const entry = suite === undefined ? undefined : SUITES[suite];
    if (!entry) throw new UsageError(`name a suite: ${Object.keys(SUITES).join(', ')}${suite ? ` (got "${suite}")` : ''}`);
    return entry.run(rest);
  },
};
