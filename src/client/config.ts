/**
 * A client node's settings, built once at the entry point (`lethe client run` or a test) and frozen.
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { BackendName } from '../backend/backend.js';
import { gaussianNoise, type NoiseSource } from '../privacy/gaussian.js';
import { DEFAULT_BACKOFF, type BackoffConfig } from './backoff.js';
import type { LocalDataSpec } from './local-data.js';
import type { ClientPrivacyBudget } from './privacy.js';
import type { DetectorDisclosure } from './unlearn-task.js';

export interface ClientNodeConfig {
  /** Holds the identity (client.key, identity.json); required. */
  readonly dataDir: string;
  /** The local training data; required. */
  readonly data: LocalDataSpec;
  /** host:port; default: the coordinator recorded at enrollment. */
  readonly coordinator: string | undefined;
  /** Channel credentials; default: TLS with the enrollment's CA file when one was recorded, else plaintext. */
  readonly credentials: ChannelCredentials | undefined;
  /** tfjs backend; undefined = the best available (src/backend). */
  readonly backend: BackendName | undefined;
  /** Directory whose models/tiny-gpt2 holds the built-in base; default `dataDir`. Clients on one machine share one. */
  readonly modelCacheDir: string | undefined;
  /** 10000: how long one PullTask long poll waits for work (the coordinator caps it). */
  readonly pullWaitMs: number;
  /** 5000: heartbeat period until the coordinator says otherwise. */
  readonly heartbeatIntervalMs: number;
  /** Reconnect and retry delays (250 ms doubling, capped at 5 s, equal jitter). */
  readonly backoff: BackoffConfig;
  /** One line per event worth a human's attention; default: stderr with a timestamp. */
  readonly log: (line: string) => void;
  /** Date.now; injected for tests. */
  readonly clock: () => number;
  /** Jitter only (never privacy): Math.random. */
  readonly random: () => number;
  /** DP noise: node:crypto's gaussianNoise. */
  readonly noise: NoiseSource;
  /**
   * This client's own sample-level DP budget across runs (privacy.ts): a task whose DP-SGD / DPZero steps would pass
   * it is refused. undefined = no local limit (the run's budget on the coordinator still applies).
   */
  readonly privacyBudget: ClientPrivacyBudget | undefined;
  /** What an unlearning package's detector may reveal of this client's forget set (unlearn-task.ts). */
  readonly detectorDisclosure: DetectorDisclosure;
}

export const DEFAULT_CLIENT_NODE_CONFIG: Omit<ClientNodeConfig, 'dataDir' | 'data'> = Object.freeze({
  coordinator: undefined,
  credentials: undefined,
  backend: undefined,
  modelCacheDir: undefined,
  pullWaitMs: 10_000,
  heartbeatIntervalMs: 5_000,
  backoff: DEFAULT_BACKOFF,
  log: (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
  clock: Date.now,
  random: Math.random,
  noise: gaussianNoise,
  privacyBudget: undefined,
  detectorDisclosure: 'full',
});

export function clientNodeConfig(overrides: Partial<ClientNodeConfig> & Pick<ClientNodeConfig, 'dataDir' | 'data'>): ClientNodeConfig {
  return Object.freeze({ ...DEFAULT_CLIENT_NODE_CONFIG, ...overrides });
}
