/**
 * What coordinators sharing one NATS JetStream need besides the store and the event bus: run leases (leases.ts),
 * shared liveness (presence.ts), one admin token for all of them, and a view of whether NATS is reachable. One
 * connection, three KV buckets next to the store's (same prefix):
 *
 *   <p>_leases    <run>           {holder, renewedAt, expiresAt}: who aggregates the run
 *   <p>_presence  <client>        last-seen time; entries live 2 × the online window (bucket max age)
 *   <p>_cluster   admin_token     the operators' bearer token, created by the first coordinator to start
 *
 *   const cluster = await openNatsCluster(natsClusterConfig({ servers: 'nats://127.0.0.1:4222', bucketPrefix: 'lethe' }),
 *     { holder: 'coord_1a2b-9f', presenceTtlMs: 30_000, log: console.error });
 *   if (await cluster.leases.lead('run_1')) { ... }
 */
import { connect, Events, StorageType, type KV, type NatsConnection } from 'nats';
import { natsBucketNames } from '../store/nats/store.js';
import { ClusterConfigError, ClusterUnavailableError } from './errors.js';
import { DEFAULT_LEASE_CONFIG, NatsRunLeases, type LeaseConfig } from './leases.js';
import { NatsPresence } from './presence.js';

export interface NatsClusterConfig {
  /** The server, or a cluster's seed list, e.g. ['nats://n1:4222', 'nats://n2:4222']. Required. */
  readonly servers: readonly string[];
  /** 'lethe': prefix of every bucket (the store's and these); coordinators with one prefix share one state. */
  readonly bucketPrefix: string;
  /** 1: JetStream replicas per bucket; 3 on a 3-node cluster so an acknowledged write is on a quorum. */
  readonly replicas: number;
  /** 'file': bucket storage; 'memory' loses everything when the server stops (throwaway tests only). */
  readonly storage: 'file' | 'memory';
  /** Lease timings (DEFAULT_LEASE_CONFIG: ttl 4 s, renew every 1 s, followers look every 0.5 s). */
  readonly lease: LeaseConfig;
  /** 2000: how long (ms) connecting waits for a server. */
  readonly connectTimeoutMs: number;
  /** 5000: how long (ms) one JetStream request may take. */
  readonly requestTimeoutMs: number;
  /** 250: pause (ms) between reconnect attempts; the coordinator keeps reconnecting until it closes. */
  readonly reconnectWaitMs: number;
}

export const DEFAULT_NATS_CLUSTER_CONFIG: Omit<NatsClusterConfig, 'servers'> = Object.freeze({
  bucketPrefix: 'lethe',
  replicas: 1,
  storage: 'file',
  lease: DEFAULT_LEASE_CONFIG,
  connectTimeoutMs: 2000,
  requestTimeoutMs: 5000,
  reconnectWaitMs: 250,
});

/** A frozen, checked config; ClusterConfigError names a bad field. */
export function natsClusterConfig(overrides: Partial<NatsClusterConfig> & { readonly servers: readonly string[] }): NatsClusterConfig {
  const config: NatsClusterConfig = Object.freeze({ ...DEFAULT_NATS_CLUSTER_CONFIG, ...overrides, servers: Object.freeze([...overrides.servers]) });
  if (config.servers.length === 0 || config.servers.some((s) => s.trim() === '')) throw new ClusterConfigError('name at least one NATS server (nats://host:4222)');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(config.bucketPrefix)) {
    throw new ClusterConfigError(`bucket prefix must be 1-64 letters, digits, '-' or '_', got ${JSON.stringify(config.bucketPrefix)}`);
  }
  if (![1, 3, 5].includes(config.replicas)) throw new ClusterConfigError(`replicas must be 1, 3 or 5, got ${config.replicas}`);
  const { ttlMs, renewEveryMs, pollMs } = config.lease;
  if (!(renewEveryMs > 0 && pollMs > 0 && ttlMs >= 2 * renewEveryMs)) {
    throw new ClusterConfigError(`lease timings need renewEveryMs > 0, pollMs > 0 and ttlMs ≥ 2 × renewEveryMs, got ${JSON.stringify(config.lease)}`);
  }
  return config;
}

const CLUSTER_BUCKETS = ['leases', 'presence', 'cluster'] as const;

/** The cluster's own bucket names for a prefix (the store's are natsBucketNames in src/store/nats/store.ts). */
export function clusterBucketNames(bucketPrefix: string): readonly string[] {
  return CLUSTER_BUCKETS.map((b) => `${bucketPrefix}_${b}`);
}

/**
 * Deletes every bucket of `bucketPrefix` (ALL the state of that deployment: the store's and the cluster's). For
 * benchmarks, tests and decommissioning; coordinators of that prefix must be stopped first.
 */
export async function destroyNatsState(servers: readonly string[], bucketPrefix: string): Promise<void> {
  const nc = await connect({ servers: [...servers], timeout: 2000 });
  try {
    const jsm = await nc.jetstreamManager();
    const store = natsBucketNames(bucketPrefix);
    const streams = [...[...store.kv, ...clusterBucketNames(bucketPrefix)].map((b) => `KV_${b}`), ...store.objects.map((b) => `OBJ_${b}`)];
    await Promise.all(streams.map((s) => jsm.streams.delete(s).catch(() => false)));
  } finally {
    await nc.close();
  }
}

const ADMIN_TOKEN_KEY = 'admin_token';

export type Reachability = { readonly type: 'unreachable'; readonly reason: string } | { readonly type: 'reachable' };

export class NatsCluster {
  readonly leases: NatsRunLeases;
  readonly presence: NatsPresence;

  /** Use openNatsCluster. */
  constructor(
    private readonly nc: NatsConnection,
    private readonly meta: KV,
    leases: KV,
    presence: KV,
    holder: string,
    config: NatsClusterConfig,
    log: (line: string) => void,
  ) {
    this.leases = new NatsRunLeases(leases, holder, config.lease, log);
    this.presence = new NatsPresence(presence, nc, `${config.bucketPrefix}_presence`, log);
  }

  /**
   * The admin token every coordinator of this prefix uses: the one already in NATS, else `candidate` (this
   * coordinator's own) becomes it. Anyone who can write these buckets controls the state anyway, so NATS access
   * must be restricted like admin access (deploy/README.md).
   */
  async sharedAdminToken(candidate: string): Promise<string> {
    try {
      await this.meta.create(ADMIN_TOKEN_KEY, new TextEncoder().encode(candidate));
      return candidate;
    } catch (err) {
      const existing = await this.meta.get(ADMIN_TOKEN_KEY).catch(() => null);
      if (existing?.operation === 'PUT') return existing.string();
      throw new ClusterUnavailableError('read the shared admin token', (err as Error).message, { cause: err });
    }
  }

  /** Connection changes as they happen: unreachable (with why) and reachable again. */
  async *reachability(): AsyncGenerator<Reachability> {
    for await (const s of this.nc.status()) {
      if (s.type === Events.Disconnect) yield { type: 'unreachable', reason: `disconnected from ${String(s.data)}` };
      else if (s.type === Events.Reconnect) yield { type: 'reachable' };
    }
  }

  /** Releases held leases, stops watching presence, then closes the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    this.presence.close();
    await this.leases.close();
    if (!this.nc.isClosed()) await this.nc.drain().catch(() => this.nc.close());
  }
}

/** Connects and creates the cluster's buckets that do not exist yet; ClusterUnavailableError when NATS does not answer. */
export async function openNatsCluster(
  config: NatsClusterConfig,
  options: { readonly holder: string; readonly presenceTtlMs: number; readonly log: (line: string) => void },
): Promise<NatsCluster> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({
      servers: [...config.servers],
      name: `lethe-cluster ${options.holder}`,
      timeout: config.connectTimeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: config.reconnectWaitMs,
      noAsyncTraces: true, // no stack capture per request; errors name the operation
    });
    const js = nc.jetstream({ timeout: config.requestTimeoutMs });
    const base = { history: 1, replicas: config.replicas, storage: config.storage === 'memory' ? StorageType.Memory : StorageType.File };
    const p = config.bucketPrefix;
    const [leases, presence, meta] = await Promise.all([
      js.views.kv(`${p}_leases`, base),
      js.views.kv(`${p}_presence`, { ...base, ttl: options.presenceTtlMs }),
      js.views.kv(`${p}_cluster`, base),
    ]);
    return new NatsCluster(nc, meta, leases, presence, options.holder, config, options.log);
  } catch (err) {
    await nc?.close();
    const code = (err as { code?: unknown }).code;
    throw new ClusterUnavailableError(`open the coordinator cluster at ${config.servers.join(',')}`, typeof code === 'string' ? code.toLowerCase().replace(/_/g, ' ') : String(err), {
      cause: err,
    });
  }
}
