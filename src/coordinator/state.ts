/**
 * Where a coordinator keeps what it shares: embedded (SQLite in the data directory, an in-process event bus, and it
 * leads every run) or NATS JetStream (the NATS store, the NATS event bus, run leases, shared liveness and one admin
 * token for every coordinator with the same bucket prefix). Opened once at start, closed once at the end.
 */
import { InProcessEventBus } from '../bus/memory.js';
import { connectNatsBus } from '../bus/nats.js';
import type { EventBus } from '../bus/bus.js';
import { openNatsCluster, type NatsCluster, type Reachability } from '../cluster/cluster.js';
import { LocalRunLeases, type RunLeases } from '../cluster/leases.js';
import type { PresenceObserver, PresenceSink } from '../cluster/presence.js';
import { openNatsStore } from '../store/nats/store.js';
import { openSqliteStore, sqliteStorePath } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import type { CoordinatorConfig } from './config.js';

export interface CoordinatorState {
  readonly store: Store;
  readonly bus: EventBus;
  readonly leases: RunLeases;
  /** Where liveness is shared (undefined: this process only). */
  readonly presence: PresenceSink | undefined;
  /** 'data in /var/lib/lethe' or 'state in NATS nats://… (buckets lethe_*)', for the start log line. */
  readonly where: string;
  /** Mirrors other coordinators' sightings into `observer`; resolves once the current ones are in. */
  followPresence(observer: PresenceObserver): Promise<void>;
  /** The admin token to use, given this data directory's own (NATS: the one every coordinator shares). */
  adminToken(local: string): Promise<string>;
  /** NATS connection changes (nothing for embedded state). */
  reachability(): AsyncIterable<Reachability>;
  /** Gives leases up, then closes the bus and the store. Idempotent. */
  close(): Promise<void>;
}

function embedded(config: CoordinatorConfig): CoordinatorState {
  const store = openSqliteStore(sqliteStorePath(config.dataDir), { clock: config.clock });
  const bus = new InProcessEventBus();
  return {
    store,
    bus,
    leases: new LocalRunLeases(),
    presence: undefined,
    where: `data in ${config.dataDir}`,
    followPresence: () => Promise.resolve(),
    adminToken: (local) => Promise.resolve(local),
    reachability: async function* () {},
    async close() {
      await bus.close();
      store.close();
    },
  };
}

async function shared(config: CoordinatorConfig, holder: string): Promise<CoordinatorState> {
  const nats = config.nats!;
  const common = { servers: nats.servers, connectTimeoutMs: nats.connectTimeoutMs, reconnectWaitMs: nats.reconnectWaitMs };
  let cluster: NatsCluster | undefined;
  let bus: EventBus | undefined;
  try {
    cluster = await openNatsCluster(nats, { holder, presenceTtlMs: 2 * config.heartbeatIntervalMs * config.offlineAfterBeats, log: config.log });
    bus = await connectNatsBus({ ...common, name: `lethe-bus ${holder}` });
    const store = await openNatsStore({
      ...common,
      bucketPrefix: nats.bucketPrefix,
      replicas: nats.replicas,
      storage: nats.storage,
      requestTimeoutMs: nats.requestTimeoutMs,
      name: `lethe-store ${holder}`,
      clock: config.clock,
    });
    const c = cluster;
    const b = bus;
    let closing: Promise<void> | undefined;
    return {
      store,
      bus,
      leases: c.leases,
      presence: c.presence,
      where: `state in NATS ${nats.servers.join(',')} (buckets ${nats.bucketPrefix}_*, local files in ${config.dataDir})`,
      followPresence: (observer) => c.presence.follow(observer),
      adminToken: (local) => c.sharedAdminToken(local),
      reachability: () => c.reachability(),
      close() {
        closing ??= (async () => {
          await c.close(); // leases first, so a follower takes over at once
          await b.close();
          await store.drain();
        })();
        return closing;
      },
    };
  } catch (err) {
    await bus?.close();
    await cluster?.close();
    throw err;
  }
}

/** Opens the coordinator's state as its config says (config.nats set: NATS; else embedded). */
export function openCoordinatorState(config: CoordinatorConfig, holder: string): Promise<CoordinatorState> {
  return config.nats === undefined ? Promise.resolve(embedded(config)) : shared(config, holder);
}
