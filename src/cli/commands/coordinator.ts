/**
 * `lethe coordinator start`: runs the coordinator until SIGINT/SIGTERM, then drains it (in-flight calls finish, open
 * rounds stay in the store and resume at the next start). With --nats, the state lives in NATS JetStream and is
 * shared by every coordinator started with the same --bucket-prefix (README "Scaling out"; deploy/). With --config, the run in that file is created at start
 * unless a run with the identical config already exists (so restarting with the same flags does not duplicate it).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseBackendName } from '../../backend/backend.js';
import { adminTokenPath } from '../../auth/admin-token.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { DEFAULT_COORDINATOR_CONFIG, type TlsFiles } from '../../coordinator/config.js';
import { DEFAULT_NATS_CLUSTER_CONFIG, natsClusterConfig, type NatsClusterConfig } from '../../cluster/cluster.js';
import { ClusterConfigError } from '../../cluster/errors.js';
import { UsageError, numberFlag, type Command } from '../command.js';
import { readRunConfigFile } from './runs.js';
import { heapFloorHint, hugePagesHint } from '../../memory-tuning.js';

async function tlsFiles(cert: string | undefined, key: string | undefined, ca: string | undefined): Promise<TlsFiles | undefined> {
  if (!cert && !key && !ca) return undefined;
  if (!cert || !key) throw new UsageError('TLS needs both --tls-cert and --tls-key (--tls-ca adds mutual TLS)');
  const read = (path: string, flag: string): Promise<Buffer> =>
    readFile(path).catch((err: unknown) => {
      throw new UsageError(`cannot read --${flag} ${path}: ${(err as Error).message}`);
    });
  return { cert: await read(cert, 'tls-cert'), key: await read(key, 'tls-key'), ...(ca ? { ca: await read(ca, 'tls-ca') } : {}) };
}

/** --nats URLS[,URLS…] --bucket-prefix P --nats-replicas N → the cluster config (undefined without --nats). */
function natsFlags(urls: string | undefined, prefix: string | undefined, replicas: string | undefined): NatsClusterConfig | undefined {
  if (urls === undefined) {
    if (prefix !== undefined || replicas !== undefined) throw new UsageError('--bucket-prefix and --nats-replicas need --nats URLS');
    return undefined;
  }
  const servers = urls.split(',').map((u) => u.trim()).filter((u) => u !== '');
  try {
    return natsClusterConfig({
      servers,
      bucketPrefix: prefix ?? DEFAULT_NATS_CLUSTER_CONFIG.bucketPrefix,
      replicas: numberFlag('nats-replicas', replicas, DEFAULT_NATS_CLUSTER_CONFIG.replicas),
    });
  } catch (err) {
    if (err instanceof ClusterConfigError) throw new UsageError(`--nats: ${err.message}`);
    throw err;
  }
}

export const coordinatorStartCommand: Command = {
  path: ['coordinator', 'start'],
  summary: 'run the coordinator (enrollment, rounds, admin, inference) until interrupted',
  usage:
    '--data-dir DIR [--port 7070] [--host 127.0.0.1] [--config RUN.json] [--tls-cert PEM --tls-key PEM [--tls-ca PEM]] [--backend NAME] ' +
    '[--nats nats://HOST:4222[,…] [--bucket-prefix lethe] [--nats-replicas 1|3|5]]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        'data-dir': { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        config: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-ca': { type: 'string' },
        backend: { type: 'string' },
        nats: { type: 'string' },
        'bucket-prefix': { type: 'string' },
        'nats-replicas': { type: 'string' },
      },
    });
    const dataDir = values['data-dir'];
    if (!dataDir) throw new UsageError('--data-dir DIR is required (the database and admin.token live there)');
    const port = numberFlag('port', values.port, DEFAULT_COORDINATOR_CONFIG.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, got ${values.port}`);
    const runJson = values.config ? await readRunConfigFile(values.config) : undefined;
    const nats = natsFlags(values.nats, values['bucket-prefix'], values['nats-replicas']);
    const coordinator = new Coordinator({
      dataDir,
      nats,
      port,
      host: values.host ?? DEFAULT_COORDINATOR_CONFIG.host,
      tls: await tlsFiles(values['tls-cert'], values['tls-key'], values['tls-ca']),
      backend: values.backend ? parseBackendName(values.backend) : undefined,
    });
    await coordinator.start();
    process.stderr.write(`admin token: ${adminTokenPath(dataDir)}\n`);
    for (const hint of [hugePagesHint(), heapFloorHint()]) if (hint) process.stderr.write(`${hint}\n`);
    if (runJson) {
      const run = await coordinator.ensureRun(JSON.parse(runJson));
      process.stderr.write(run.created ? `created run ${run.runId} from --config\n` : `run ${run.runId} from --config already exists\n`);
    }
    const stop = (): void => {
      process.stderr.write('draining (signal again to stop at once)\n');
      process.once('SIGINT', () => void coordinator.close());
      process.once('SIGTERM', () => void coordinator.close());
      void coordinator.drain().catch(() => coordinator.close());
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const err = await coordinator.closed();
    return err ? 1 : 0;
  },
};
