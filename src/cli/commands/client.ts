/**
 * `lethe client enroll` and `lethe client run`: a device joins a coordinator, then trains for it until stopped.
 *
 *   lethe client enroll --coordinator coord.example:7070 --token lethe_jt_... --name laptop-1
 *   lethe client run --data builtin:spam --partition 3/8 --alpha 0.5
 *   lethe client run --data ./mails.jsonl --json          # events as JSON lines on stdout
 *
 * Exit codes of `run`: 0 after Ctrl-C / SIGTERM, 3 when the coordinator refuses the client for good (revoked,
 * unknown); 1 for other errors. `enroll` exits 3 when the join token is refused.
 */
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { enroll, parseModes } from '../../client/enroll.js';
import { EnrollmentRefusedError, ClientRefusedError } from '../../client/errors.js';
import type { ClientEvent } from '../../client/events.js';
import { DEFAULT_PARTITION_SEED, DEFAULT_BUILTIN_SPLIT, parsePartition, type LocalDataSpec } from '../../client/local-data.js';
import { DEFAULT_CLIENT_NODE_CONFIG, clientNodeConfig } from '../../client/config.js';
import { DETECTOR_DISCLOSURES, type DetectorDisclosure } from '../../client/unlearn-task.js';
import { ClientNode } from '../../client/node.js';
import { parseBackendName, backendFromEnv } from '../../backend/backend.js';
import { loadLetheProto } from '../../wire/proto.js';
import { channelCredentials } from '../../wire/tls.js';
import { numberFlag, UsageError, type Command } from '../command.js';
import { type Flags, parseFlags, resolveDataDir, startBackend, str, tlsFlags } from '../flags.js';
import { hugePagesHint } from '../../memory-tuning.js';

/** Exit code for a refusal that retrying cannot fix (revoked client, refused join token). */
export const EXIT_REFUSED = 3;

/** --data-dir, else <LETHE_HOME or ~/.lethe>/client. */
export function clientDataDir(flag: string | undefined): string {
  return flag ?? join(resolveDataDir(undefined), 'client');
}

export const clientEnrollCommand: Command = {
  path: ['client', 'enroll'],
  summary: 'create this client key and join a coordinator with a join token',
  usage: '--coordinator HOST:PORT --token T [--name N] [--data-dir DIR] [--memory-mb M] [--modes backprop,mezo,essa] [--tls-ca PEM [--tls-cert PEM --tls-key PEM]] [--backend B]',
  async run(argv) {
    const flags = parseFlags(argv, {
      coordinator: { type: 'string' },
      token: { type: 'string' },
      name: { type: 'string' },
      'data-dir': { type: 'string' },
      'memory-mb': { type: 'string' },
      modes: { type: 'string' },
      'tls-ca': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      backend: { type: 'string' },
    });
    const address = str(flags.coordinator);
    const token = str(flags.token);
    if (!address) throw new UsageError('--coordinator HOST:PORT is required');
    if (!token) throw new UsageError('--token is required (the operator creates one with `lethe token create`)');
    const memoryMb = numberFlag('memory-mb', str(flags['memory-mb']), 2048);
    if (!(memoryMb > 0)) throw new UsageError(`--memory-mb must be positive, got ${memoryMb}`);
    const modes = parseModes(str(flags.modes) ?? 'backprop,mezo,essa');
    const tls = tlsFlags(flags);
    const dataDir = clientDataDir(str(flags['data-dir']));
    const backend = await startBackend(str(flags.backend));
    try {
      const identity = await enroll({
        proto: loadLetheProto(),
        address,
        credentials: channelCredentials(tls),
        joinToken: token,
        name: str(flags.name) ?? hostname(),
        dataDir,
        memoryMb,
        modes,
        backend: backend.backend,
        ...(tls ? { tls } : {}),
      });
      process.stdout.write(`enrolled as ${identity.record.clientId} with ${address}; identity in ${dataDir}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof EnrollmentRefusedError)) throw err;
      process.stderr.write(`lethe client enroll: ${err.message}\n`);
      return EXIT_REFUSED;
    }
  },
};

/** The local data spec from --data, --partition, --alpha, --partition-seed, --split-seed. */
export function dataSpecFromFlags(flags: Record<string, string | boolean | undefined>): LocalDataSpec {
  const source = str(flags.data);
  if (!source) throw new UsageError('--data FILE|builtin:spam is required');
  const partitionText = str(flags.partition);
  const alpha = numberFlag('alpha', str(flags.alpha), 0.5);
  if (!(alpha > 0)) throw new UsageError(`--alpha must be positive, got ${alpha}`);
  let partition: LocalDataSpec['partition'];
  if (partitionText !== undefined) {
    try {
      partition = { ...parsePartition(partitionText), alpha, seed: str(flags['partition-seed']) ?? DEFAULT_PARTITION_SEED };
    } catch (err) {
      throw new UsageError(`--partition: ${(err as Error).message}`, { cause: err });
    }
  }
  const splitSeed = str(flags['split-seed']);
  const split = splitSeed !== undefined || source.startsWith('builtin:') ? { ...DEFAULT_BUILTIN_SPLIT, seed: splitSeed ?? DEFAULT_BUILTIN_SPLIT.seed } : undefined;
  return { source, ...(partition ? { partition } : {}), ...(split ? { split } : {}) };
}

function eventLine(e: ClientEvent): string {
  const plain = e.type === 'disconnected' || e.type === 'error' || e.type === 'closed' ? { ...e, error: e.error?.message } : e;
  return `${JSON.stringify({ time: new Date().toISOString(), ...plain })}\n`;
}

/** --detector-disclosure: what this client's unlearning packages may reveal of its forget sets (unlearn-task.ts). */
export function detectorDisclosureFromFlags(flags: Flags): DetectorDisclosure {
  const value = str(flags['detector-disclosure']) ?? DEFAULT_CLIENT_NODE_CONFIG.detectorDisclosure;
  const known = DETECTOR_DISCLOSURES.find((d) => d === value);
  if (!known) throw new UsageError(`--detector-disclosure must be one of ${DETECTOR_DISCLOSURES.join(', ')}, got "${value}"`);
  return known;
}

export const clientRunCommand: Command = {
  path: ['client', 'run'],
  summary: 'train for the coordinator this client enrolled with, until stopped',
  usage:
    '--data FILE|builtin:spam [--partition I/N --alpha A --partition-seed S] [--split-seed S] [--data-dir DIR] ' +
    '[--coordinator HOST:PORT] [--model-cache DIR] [--backend B] [--detector-disclosure full|no-bank|layers] [--json]',
  async run(argv) {
    const flags = parseFlags(argv, {
      data: { type: 'string' },
      partition: { type: 'string' },
      alpha: { type: 'string' },
      'partition-seed': { type: 'string' },
      'split-seed': { type: 'string' },
      'data-dir': { type: 'string' },
      coordinator: { type: 'string' },
      'model-cache': { type: 'string' },
      backend: { type: 'string' },
      'detector-disclosure': { type: 'string' },
      json: { type: 'boolean' },
    });
    const data = dataSpecFromFlags(flags);
    const detectorDisclosure = detectorDisclosureFromFlags(flags);
    const backendFlag = str(flags.backend);
    const node = await ClientNode.start(
      clientNodeConfig({
        dataDir: clientDataDir(str(flags['data-dir'])),
        data,
        coordinator: str(flags.coordinator),
        modelCacheDir: str(flags['model-cache']),
        backend: backendFlag ? parseBackendName(backendFlag) : backendFromEnv(),
        detectorDisclosure,
      }),
    );
    const memoryHint = hugePagesHint();
    if (memoryHint) process.stderr.write(`${memoryHint}\n`);
    if (flags.json) {
      void (async () => {
        for await (const e of node.status()) process.stdout.write(eventLine(e));
      })();
    }
    // SIGTERM: stop now. Ctrl-C: finish and upload the task in hand first; a second Ctrl-C stops now.
    const onTerm = (): void => void node.close();
    const onInt = (): void => {
      process.off('SIGINT', onInt);
      process.once('SIGINT', onTerm);
      process.stderr.write('finishing the current task (Ctrl-C again to stop now)\n');
      void node.drain().catch(() => undefined);
    };
    process.once('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    const error = await node.closed();
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGINT', onTerm);
    if (error instanceof ClientRefusedError) {
      process.stderr.write(`lethe client run: ${error.message}\n`);
      return EXIT_REFUSED;
    }
    if (error) throw error;
    return 0;
  },
};
