/**
 * The coordinator: one gRPC server (EnrollmentService, FleetService, AdminService, InferenceService, health,
 * reflection) over one store: SQLite in the data directory (embedded), or NATS JetStream shared with other
 * coordinators (config.nats; see state.ts, src/cluster). Lifecycle after nats.js: `start()`, `drain()` (stop
 * handing out work, let in-flight calls finish, then close), `close()` (idempotent), `closed()` (resolves with the
 * error that ended it, if any), `status()` (tagged events) and async disposal. Calls after close throw
 * CoordinatorClosedError.
 *
 *   await using coordinator = new Coordinator(coordinatorConfig({ dataDir: '/var/lib/lethe', port: 7070 }));
 *   await coordinator.start();
 *   for await (const e of coordinator.status()) if (e.type === 'round_closed') console.log(e.round, e.metrics);
 *
 * Crash safety comes from the order of writes (every acknowledgement follows its durable write) and from the run
 * driver reading its state from the store on every step; a restart on the same data directory resumes every run.
 * On NATS, another coordinator resumes a dead one's runs once their leases go stale; while NATS is unreachable the
 * coordinator answers UNAVAILABLE (health NOT_SERVING), logs why, and serves again when NATS is back.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import { adminTokenPath, loadOrCreateAdminToken } from '../auth/admin-token.js';
import { writeSecretFile } from '../auth/key-file.js';
import { RequestAuthenticator } from '../auth/authenticator.js';
import { EventChannel } from '../lifecycle/event-channel.js';
import { PrivacyLedger } from '../privacy/ledger.js';
import { WorkerDigestVerifier } from '../wire/digest-worker.js';
import { loadLetheProto } from '../wire/proto.js';
import { addStandardServices, bindServer, createServer, type StandardServices } from '../wire/server.js';
import { adminHandlers, createRunFromConfig, inferenceHandlers } from './admin.js';
import { coordinatorConfig, type CoordinatorConfig } from './config.js';
import type { CoordinatorCore, Lifecycle } from './core.js';
import { enrollmentHandlers } from './enrollment.js';
import { CoordinatorClosedError, CoordinatorError } from './errors.js';
import type { CoordinatorEvent } from './events.js';
import { fleetHandlers } from './fleet.js';
import { tolerantService } from './handlers.js';
import { ModelService } from './inference.js';
import { UnlearningGates } from './unlearning.js';
import { followPeers } from './peers.js';
import { Presence } from './presence.js';
import { parseRunConfig, runConfigToJson } from './run-config.js';
import { RunRegistry } from './runs.js';
import { openCoordinatorState, type CoordinatorState } from './state.js';

const ID_FILE = 'coordinator.id';

/** The deployment's stable id, created with the data directory. */
async function coordinatorId(dataDir: string): Promise<string> {
  const path = join(dataDir, ID_FILE);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    const id = `coord_${randomBytes(8).toString('hex')}`;
    await writeFile(path, `${id}\n`, { flag: 'wx' }).catch(() => undefined);
    return (await readFile(path, 'utf8')).trim();
  }
}

function credentialsOf(config: CoordinatorConfig): ServerCredentials {
  const tls = config.tls;
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.ca !== undefined);
}

interface Running {
  readonly core: CoordinatorCore;
  readonly state: CoordinatorState;
  readonly server: Server;
  readonly standard: StandardServices;
  readonly runs: RunRegistry;
  readonly models: ModelService;
  /** Stops following the bus and the periodic sweep. */
  readonly unfollow: () => void;
}

export class Coordinator implements AsyncDisposable {
  readonly config: CoordinatorConfig;
  private readonly events = new EventChannel<CoordinatorEvent>();
  private readonly state: { draining: boolean; closed: boolean } = { draining: false, closed: false };
  private running: Running | undefined;
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private boundPort = 0;
  private token = '';
  private resolveClosed!: (err: Error | undefined) => void;
  private readonly closedPromise = new Promise<Error | undefined>((resolve) => (this.resolveClosed = resolve));

  constructor(config: CoordinatorConfig | (Partial<CoordinatorConfig> & { readonly dataDir: string })) {
    this.config = coordinatorConfig(config);
  }

  /** The port the server listens on (useful with port 0). */
  get port(): number {
    return this.boundPort;
  }

  /** host:port to dial. */
  get address(): string {
    return `${this.config.host === '0.0.0.0' ? '127.0.0.1' : this.config.host}:${this.boundPort}`;
  }

  /** The operator's credential (also in <data-dir>/admin.token, mode 0600). */
  get adminToken(): string {
    return this.token;
  }

  get isClosed(): boolean {
    return this.state.closed;
  }

  /** Opens the store, binds the server and resumes every unfinished run. */
  start(): Promise<void> {
    if (this.state.closed) return Promise.reject(new CoordinatorClosedError('start'));
    this.starting ??= this.doStart().catch(async (err: unknown) => {
      await this.close(err instanceof Error ? err : new Error(String(err)));
      throw err;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const { config } = this;
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    const id = await coordinatorId(config.dataDir);
    // Unique per start: a restarted coordinator must not take its dead predecessor's leases for its own.
    const state = await openCoordinatorState(config, `${id}-${randomBytes(3).toString('hex')}`);
    try {
      this.running = await this.assemble(state, id);
    } catch (err) {
      await state.close().catch(() => undefined);
      throw err;
    }
    const { core, runs, server } = this.running;
    this.boundPort = await bindServer(server, `${config.host}:${config.port}`, credentialsOf(config));
    config.log(`coordinator ${core.coordinatorId} listening on ${this.address}${config.tls ? (config.tls.ca ? ' (mutual TLS)' : ' (TLS)') : ' (plaintext)'}, ${state.where}`);
    this.events.emit({ type: 'listening', address: this.address, port: this.boundPort });
    void this.followReachability(this.running);
    await runs.kickActive();
  }

  /** The coordinator's parts over its opened state: core, services, the bus follower (nothing listens yet). */
  private async assemble(state: CoordinatorState, id: string): Promise<Running> {
    const { config } = this;
    const { store } = state;
    const local = await loadOrCreateAdminToken(config.dataDir);
    this.token = await state.adminToken(local);
    if (this.token !== local) await writeSecretFile(adminTokenPath(config.dataDir), `${this.token}\n`); // so the CLI on this host finds it
    const lifecycle: Lifecycle = this.state;
    const core: CoordinatorCore = {
      config,
      store,
      proto: loadLetheProto(),
      presence: new Presence(config.clock, config.heartbeatIntervalMs * config.offlineAfterBeats, state.presence),
      events: this.events,
      bus: state.bus,
      leases: state.leases,
      ledger: new PrivacyLedger({ store: store.ledger, now: config.clock }),
      lifecycle,
      digests: new WorkerDigestVerifier(),
      coordinatorId: id,
      startedAt: config.clock(),
    };
    await state.followPresence(core.presence);
    const models = new ModelService(core, new UnlearningGates(core));
    const runs = new RunRegistry(core, models);
    const authenticator = new RequestAuthenticator(store, { window: { maxSkewMs: config.timestampWindowMs }, clock: config.clock });
    const server = createServer();
    const { services } = core.proto;
    server.addService(tolerantService(services.enrollment), enrollmentHandlers(core, authenticator));
    server.addService(tolerantService(services.fleet), fleetHandlers(core, runs, authenticator));
    server.addService(tolerantService(services.admin), adminHandlers({ core, runs, models, adminToken: this.token }));
    server.addService(tolerantService(services.inference), inferenceHandlers(core, runs, models, config.predictNeedsAdminToken ? this.token : undefined));
    const standard = addStandardServices(server, core.proto.protoPaths);
    const unfollowPeers = followPeers(core, runs);
    // Runs created or resumed through another coordinator: follow them too (a cheap store read each sweep).
    const sweep = config.nats === undefined ? undefined : setInterval(() => void runs.kickActive().catch(() => undefined), 4 * core.leases.pollMs);
    const unfollow = (): void => {
      unfollowPeers();
      clearInterval(sweep);
    };
    return { core, state, server, standard, runs, models, unfollow };
  }

  /** While NATS is unreachable: not serving (every call fails UNAVAILABLE, saying so), logged once; then back. */
  private async followReachability(running: Running): Promise<void> {
    for await (const change of running.state.reachability()) {
      if (this.state.closed) return;
      if (change.type === 'unreachable') {
        this.config.log(`NATS unreachable (${change.reason}): answering UNAVAILABLE until it is back; everything acknowledged is stored in JetStream`);
        running.standard.setServing('NOT_SERVING');
        this.events.emit({ type: 'state_unavailable', reason: change.reason });
      } else {
        this.config.log('NATS reachable again: serving, resuming runs');
        if (!this.state.draining) running.standard.setServing('SERVING');
        this.events.emit({ type: 'state_available' });
        void running.runs.kickActive().catch(() => undefined);
      }
    }
  }

  /** Stops handing out tasks and opening rounds, lets in-flight calls finish (up to shutdownGraceMs), then closes. */
  async drain(): Promise<void> {
    if (this.state.closed) throw new CoordinatorClosedError('drain');
    if (this.state.draining) return this.closed().then(() => undefined);
    this.state.draining = true;
    this.config.log('coordinator draining');
    this.events.emit({ type: 'draining' });
    const running = this.running;
    if (running) {
      running.standard.setServing('NOT_SERVING');
      running.core.presence.notifyAll(); // long polls answer "no task" now
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          running.server.forceShutdown();
          resolve();
        }, this.config.shutdownGraceMs);
        running.server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.close();
  }

  /** Ends everything now: cuts open calls, waits for a run step in progress, closes the store. Idempotent. */
  close(err?: Error): Promise<void> {
    this.closing ??= this.doClose(err);
    return this.closing;
  }

  private async doClose(err: Error | undefined): Promise<void> {
    this.state.closed = true;
    const running = this.running;
    if (running) {
      running.unfollow();
      running.runs.stopAll();
      running.core.presence.notifyAll();
      running.server.forceShutdown();
      await running.runs.idle();
      running.models.dispose();
      await running.state.close().catch((e: unknown) => this.config.log(`closing the coordinator's state: ${(e as Error).message}`));
    }
    if (err) this.config.log(`coordinator stopped by error: ${err.message}`);
    this.events.emit({ type: 'closed' });
    this.events.end();
    this.resolveClosed(err);
  }

  /** Resolves when the coordinator has closed: with the error that ended it, or undefined after a normal close. */
  closed(): Promise<Error | undefined> {
    return this.closedPromise;
  }

  /** Events from now on, until the coordinator closes. */
  status(): AsyncIterableIterator<CoordinatorEvent> {
    if (this.state.closed) throw new CoordinatorClosedError('report status');
    return this.events.subscribe();
  }

  /**
   * Creates the run `configJson` describes unless a run with the identical (normalised) config exists, so that
   * restarting with the same --config does not duplicate it. In process: works whatever TLS the server requires.
   */
  async ensureRun(configJson: unknown): Promise<{ readonly runId: string; readonly created: boolean }> {
    if (!this.running) throw new CoordinatorError('coordinator not started', 'failed_precondition');
    const wanted = JSON.stringify(runConfigToJson(parseRunConfig(configJson)));
    const existing = (await this.running.core.store.runs.list()).find((r) => JSON.stringify(r.config) === wanted);
    if (existing) return { runId: existing.id, created: false };
    return { runId: await createRunFromConfig(this.running, configJson), created: true };
  }

  /** The shared internals, for in-process tools (benchmarks). Throws before start. */
  get core(): CoordinatorCore {
    if (!this.running) throw new CoordinatorError('coordinator not started', 'failed_precondition');
    return this.running.core;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
