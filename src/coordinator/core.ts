/**
 * What the coordinator's parts share: its settings, the durable store, the contract, liveness, the event hub, the
 * privacy ledger and the run registry. One instance per Coordinator, built at start; no module-level state.
 */
import type { EventBus } from '../bus/bus.js';
import type { RunLeases } from '../cluster/leases.js';
import type { PrivacyLedger } from '../privacy/ledger.js';
import type { Store } from '../store/store.js';
import type { WorkerDigestVerifier } from '../wire/digest-worker.js';
import type { LetheProto } from '../wire/proto.js';
import type { CoordinatorConfig } from './config.js';
import type { EventChannel } from '../lifecycle/event-channel.js';
import type { CoordinatorEvent } from './events.js';
import type { Presence } from './presence.js';

export interface Lifecycle {
  /** No new rounds open and no tasks are handed out. */
  readonly draining: boolean;
  readonly closed: boolean;
}

export interface CoordinatorCore {
  readonly config: CoordinatorConfig;
  readonly store: Store;
  readonly proto: LetheProto;
  readonly presence: Presence;
  readonly events: EventChannel<CoordinatorEvent>;
  /** What every coordinator (and any operator) hears: round and update events on NATS subjects (src/bus). */
  readonly bus: EventBus;
  /** Which runs this process drives (src/cluster/leases.ts); the embedded coordinator drives all of them. */
  readonly leases: RunLeases;
  readonly ledger: PrivacyLedger;
  readonly lifecycle: Lifecycle;
  /**
   * Byte work off the event loop, on a worker thread that exists only while there is some (wire/digest-worker.ts):
   * uploads' running digests, and faulting in buffers set aside for uploads and for a round's new adapter.
   */
  readonly digests: WorkerDigestVerifier;
  /** Stable id of this coordinator (kept in its data directory). */
  readonly coordinatorId: string;
  readonly startedAt: number;
}

/** The software version reported to clients and operators. */
export const LETHE_VERSION = 'lethe/0.1.0';
/** Wire protocol version this coordinator speaks (enrollment.proto CoordinatorInfo). */
export const PROTOCOL_VERSION = 1;
