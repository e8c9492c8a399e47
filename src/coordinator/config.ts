/**
 * The coordinator's own settings (not a run's: those are src/coordinator/run-config.ts). Built once at the entry
 * point (`lethe coordinator start` or a test) and frozen.
 */
import type { BackendName } from '../backend/backend.js';
import type { NatsClusterConfig } from '../cluster/cluster.js';

export interface TlsFiles {
  /** PEM certificate chain of the server. */
  readonly cert: Buffer;
  /** PEM private key of the server. */
  readonly key: Buffer;
  /** PEM CA bundle: when set, clients must present a certificate it signed (mutual TLS). */
  readonly ca?: Buffer;
}

export interface CoordinatorConfig {
  /** Where the database, the admin token and the built-in base model live. Required. */
  readonly dataDir: string;
  /**
   * undefined: embedded state (SQLite in dataDir, in-process event bus, this process leads every run). Set: the
   * state, the event bus, run leases and liveness live in NATS JetStream, shared by every coordinator with the same
   * bucket prefix (src/cluster, natsClusterConfig builds it).
   */
  readonly nats: NatsClusterConfig | undefined;
  /** '127.0.0.1'... or '0.0.0.0' to listen on every interface. */
  readonly host: string;
  /** 7070; 0 picks a free port (tests), see Coordinator.port. */
  readonly port: number;
  /** Plaintext when absent. */
  readonly tls: TlsFiles | undefined;
  /** tfjs backend for evaluation and Predict; undefined = the best available (src/backend). */
  readonly backend: BackendName | undefined;
  /** 5000: how often clients heartbeat; a client silent for `offlineAfterBeats` intervals is offline. */
  readonly heartbeatIntervalMs: number;
  /** 3 heartbeat intervals of silence make a client offline (not sampled). */
  readonly offlineAfterBeats: number;
  /** 30000: the longest PullTask long poll the coordinator honours (clients may ask for more). */
  readonly maxPullWaitMs: number;
  /** 2000: PullTask.retry_after_ms when there is no task. */
  readonly retryAfterMs: number;
  /** 1000: how often a run waiting for enough live clients looks again. */
  readonly waitForClientsMs: number;
  /** 256 MiB: the largest update payload accepted (CoordinatorInfo.max_update_bytes). */
  readonly maxUpdateBytes: number;
  /**
   * 256 MiB: most bytes of payload buffers set aside, and faulted in while clients train, for the large uploads of
   * tasks just handed out (payload-reserve.ts). Each open round of a run whose adapter is no larger than this also
   * has its new adapter's memory set aside, apart from that budget (round-close.ts prepareOutput). 0 turns both off.
   */
  readonly payloadReserveBytes: number;
  /** 300000 (±5 min): accepted clock skew of signed requests; nonces are remembered this long. */
  readonly timestampWindowMs: number;
  /** 512: test examples the global adapter is evaluated on after each round (a bound on evaluation time). */
  readonly evalMaxExamples: number;
  /** 0.2: the eval data's test fraction (trainTestSplit with the run seed), which clients must not train on. */
  readonly evalTestFraction: number;
  /** true: Predict needs the admin bearer token, like AdminService (inference.proto). */
  readonly predictNeedsAdminToken: boolean;
  /** 5000: in-flight calls get this long to finish on drain/close before they are cut. */
  readonly shutdownGraceMs: number;
  /** One line per event worth an operator's attention; default: stderr with a timestamp. */
  readonly log: (line: string) => void;
  /** Date.now: injected so tests can move time. */
  readonly clock: () => number;
}

export const DEFAULT_COORDINATOR_CONFIG: Omit<CoordinatorConfig, 'dataDir'> = Object.freeze({
  nats: undefined,
  host: '127.0.0.1',
  port: 7070,
  tls: undefined,
  backend: undefined,
  heartbeatIntervalMs: 5000,
  offlineAfterBeats: 3,
  maxPullWaitMs: 30_000,
  retryAfterMs: 2000,
  waitForClientsMs: 1000,
  maxUpdateBytes: 256 << 20,
  payloadReserveBytes: 256 << 20,
  timestampWindowMs: 300_000,
  evalMaxExamples: 512,
  evalTestFraction: 0.2,
  predictNeedsAdminToken: true,
  shutdownGraceMs: 5000,
  log: (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
  clock: Date.now,
});

export function coordinatorConfig(overrides: Partial<CoordinatorConfig> & { readonly dataDir: string }): CoordinatorConfig {
  return Object.freeze({ ...DEFAULT_COORDINATOR_CONFIG, ...overrides });
}
