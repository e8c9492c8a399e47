/**
 * The durable-state contract the coordinator codes against, with two implementations: SQLite (src/store/sqlite.ts, the
 * embedded default) and NATS JetStream (src/store/nats/). The methods are async and every multi-row change is one
 * domain operation (never a caller-held transaction), so both pass the same contract suite (test/store/contract.ts).
 *
 * Conventions:
 * - Times are integer milliseconds since the Unix epoch. Semantic times (expiry, deadlines, request timestamps) are
 *   arguments; bookkeeping times (created/updated/recorded) come from the store's injected clock.
 * - Hashes are SHA-256; adapter hashes are 64 lowercase hex characters, token hashes are 32 raw bytes.
 * - Compare-and-set methods return false when the entity was not in the `from` state (a lost race), and throw
 *   InvalidTransitionError when the edge is never allowed. Every failure is a StoreError (src/store/errors.ts).
 */

import type { LedgerEntry, LedgerStore } from '../privacy/ledger.js';

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };
export type JsonObject = { readonly [key: string]: JsonValue };

// ---- identity: clients, join tokens, nonces ----

export interface ClientRecord {
  readonly id: string;
  readonly name: string;
  /** Raw Ed25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  /** What the client reported at enrollment (memory, backends, modes, ...). */
  readonly capabilities: JsonObject;
  readonly enrolledAt: number;
  /** null while the client is allowed to call. */
  readonly revokedAt: number | null;
}

export interface NewClient {
  readonly id: string;
  readonly name: string;
  readonly publicKey: Uint8Array;
  readonly capabilities: JsonObject;
}

export interface JoinTokenRecord {
  /** SHA-256 of the token string (the token itself is never stored). */
  readonly hash: Uint8Array;
  readonly expiresAt: number;
  readonly usesLeft: number;
  readonly createdAt: number;
}

/** Why a join token was refused. */
export type TokenRefusal = 'unknown' | 'expired' | 'exhausted';

/** Status-or-value result of spending one use of a join token (auth turns refusals into named errors). */
export type TokenRedemption = { readonly ok: true; readonly usesLeft: number } | { readonly ok: false; readonly reason: TokenRefusal };

export type EnrollOutcome = { readonly ok: true; readonly client: ClientRecord } | { readonly ok: false; readonly reason: TokenRefusal };

export interface ClientStore {
  /**
   * Adds a client. With a join token hash, one use of that token is spent in the same transaction (and given back
   * if the client cannot be added). Throws ConflictError ('client_id' or 'public_key') for a duplicate.
   */
  enroll(client: NewClient, joinToken?: { readonly hash: Uint8Array; readonly nowMs: number }): Promise<EnrollOutcome>;
  get(id: string): Promise<ClientRecord | undefined>;
  getByPublicKey(publicKey: Uint8Array): Promise<ClientRecord | undefined>;
  list(options?: { readonly includeRevoked?: boolean }): Promise<ClientRecord[]>;
  /** Marks the client revoked; false when it already was. NotFoundError for an unknown id. */
  revoke(id: string): Promise<boolean>;
  updateCapabilities(id: string, capabilities: JsonObject): Promise<void>;
}

export interface JoinTokenStore {
  create(token: { readonly hash: Uint8Array; readonly expiresAt: number; readonly uses: number }): Promise<JoinTokenRecord>;
  get(hash: Uint8Array): Promise<JoinTokenRecord | undefined>;
  /** Spends one use. Expired or exhausted tokens are refused and left unchanged. */
  redeem(hash: Uint8Array, nowMs: number): Promise<TokenRedemption>;
  /** Deletes a token; false when it did not exist. */
  revoke(hash: Uint8Array): Promise<boolean>;
  /** Deletes tokens that expired before `nowMs` or have no uses left; returns how many. */
  prune(nowMs: number): Promise<number>;
}

export interface NonceStore {
  /** Records (client, nonce) with the request's timestamp; true if it was new, false if already seen. */
  insertIfAbsent(clientId: string, nonce: Uint8Array, timestampMs: number): Promise<boolean>;
  /** Forgets nonces whose request timestamp is before `cutoffMs`; returns how many. */
  pruneBefore(cutoffMs: number): Promise<number>;
}

// ---- runs, rounds, updates, adapters ----

export type RunState = 'pending' | 'running' | 'completed' | 'failed' | 'budget_exhausted' | 'stopped';
export type RoundState = 'open' | 'aggregating' | 'closed' | 'failed';

export interface RunRecord {
  readonly id: string;
  readonly config: JsonObject;
  readonly state: RunState;
  /** The last round opened; 0 before the first. */
  readonly currentRound: number;
  /** The current global adapter (a blob hash); null until the first one is set. */
  readonly globalAdapterSha: string | null;
  /** Why the run failed, stopped or ran out of budget (the last transition's message); null otherwise. */
  readonly message: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface RoundRecord {
  readonly runId: string;
  readonly round: number;
  readonly state: RoundState;
  readonly sampledClientIds: readonly string[];
  /** q × population under Poisson sampling; what DP divides by. */
  readonly expectedClients: number;
  readonly startedAt: number;
  readonly deadlineAt: number;
  readonly closedAt: number | null;
  readonly metrics: JsonObject;
  readonly adapterShaBefore: string | null;
  readonly adapterShaAfter: string | null;
  /** Counters kept in the same transaction as each accepted update. */
  readonly updatesReceived: number;
  readonly examplesReceived: number;
}

export interface NewRound {
  readonly runId: string;
  /** Must be the run's currentRound + 1. */
  readonly round: number;
  readonly sampledClientIds: readonly string[];
  readonly expectedClients: number;
  readonly deadlineAt: number;
}

export interface UpdateRecord {
  readonly runId: string;
  readonly round: number;
  readonly clientId: string;
  /** SHA-256 (hex) of the uploaded update payload. */
  readonly sha256: string;
  readonly numExamples: number;
  readonly metrics: JsonObject;
  readonly receivedAt: number;
}

export type NewUpdate = Omit<UpdateRecord, 'receivedAt'>;

export interface RunStore {
  /** ConflictError ('run_id') when the id exists. */
  create(run: { readonly id: string; readonly config: JsonObject; readonly globalAdapterSha?: string }): Promise<RunRecord>;
  get(id: string): Promise<RunRecord | undefined>;
  list(options?: { readonly states?: readonly RunState[] }): Promise<RunRecord[]>;
  /**
   * CAS on the run state. Edges: pending→running|failed|stopped, running→completed|failed|budget_exhausted|stopped,
   * budget_exhausted→running|failed|stopped. The run's message becomes `message` (why), or null when omitted.
   */
  transition(id: string, from: RunState, to: RunState, detail?: { readonly message?: string }): Promise<boolean>;
  /** Replaces the run's global adapter outside a round (e.g. the initial adapter); the blob must exist. */
  setGlobalAdapter(id: string, sha256: string): Promise<void>;
  /** Strategy / server-optimizer state, one JSON document per run (undefined before the first put). */
  putStrategyState(id: string, state: JsonObject): Promise<void>;
  getStrategyState(id: string): Promise<JsonObject | undefined>;
}

export interface RoundStore {
  /**
   * Opens round `round` of a running run and advances the run's currentRound, in one transaction; the round records
   * the run's global adapter as `adapterShaBefore`. InvalidTransitionError unless the run is running; ConflictError
   * ('round') when `round` is not currentRound + 1 or the previous round is still open or aggregating. Sampled ids are
   * stored as given: sampling (and who is live) is the coordinator's business.
   */
  open(round: NewRound): Promise<RoundRecord>;
  get(runId: string, round: number): Promise<RoundRecord | undefined>;
  list(runId: string): Promise<RoundRecord[]>;
  /** CAS on the round state. Edges: open→aggregating|failed, aggregating→failed; closed is reached only by close(). */
  transition(runId: string, round: number, from: RoundState, to: RoundState): Promise<boolean>;
  /**
   * aggregating → closed, and the run's global adapter becomes `adapterShaAfter` (a stored blob; null keeps the old
   * adapter), in one transaction. False when the round was not aggregating.
   */
  close(runId: string, round: number, result: { readonly adapterShaAfter: string | null; readonly metrics: JsonObject }): Promise<boolean>;
  /** open|aggregating → failed with a reason kept in metrics.failure; false when it was already closed or failed. */
  fail(runId: string, round: number, reason: string): Promise<boolean>;
  /** Merges keys into the round's metrics (e.g. evaluation results computed after close). */
  mergeMetrics(runId: string, round: number, metrics: JsonObject): Promise<RoundRecord>;
}

export interface UpdateStore {
  /**
   * Accepts a client's update for an open round and bumps the round's counters, in one transaction. A second put for
   * the same (run, round, client) changes nothing and returns {duplicate: true} with the record stored first, even
   * after the round stopped accepting (so a retried upload is recognised, not refused). A new update for a round
   * that is not open throws InvalidTransitionError; an unknown round or client, NotFoundError. Whether the client was
   * sampled for the round is the coordinator's check.
   */
  put(update: NewUpdate): Promise<{ readonly duplicate: boolean; readonly record: UpdateRecord }>;
  get(runId: string, round: number, clientId: string): Promise<UpdateRecord | undefined>;
  list(runId: string, round: number): Promise<UpdateRecord[]>;
}

export interface BlobStore {
  /** Content-addressed: stores the bytes under their SHA-256 (hex). Idempotent: `created` is false when present. */
  put(bytes: Uint8Array): Promise<{ readonly sha256: string; readonly created: boolean }>;
  /**
   * The bytes, hashed again when read from storage (IntegrityError if they no longer match), though a store may serve
   * bytes it hashed itself moments before from memory; undefined when absent. Shared: do not modify them.
   */
  get(sha256: string): Promise<Uint8Array | undefined>;
  has(sha256: string): Promise<boolean>;
  /**
   * Optional streaming put for a blob whose SHA-256 the caller computes itself over exactly the bytes it writes (the
   * coordinator's verified running digest of an upload), so those bytes are hashed once. Stores without it are
   * written through `put` (src/store/blob-writer.ts).
   */
  writer?(totalBytes: number): BlobWriter;
}

/** A blob being stored piece by piece: `write` every piece in order, then `commit` or `abort` (exactly once). */
export interface BlobWriter {
  /** Appends the next piece. The writer may keep a reference until commit or abort settles: do not modify it. */
  write(bytes: Uint8Array): void;
  /** Stores the pieces under `sha256` (their hash, computed by the caller); resolves once the blob is durable. */
  commit(sha256: string): Promise<{ readonly sha256: string; readonly created: boolean }>;
  /** Drops what was written. */
  abort(): Promise<void>;
}

// ---- privacy: ledger and budgets ----

/**
 * The privacy ledger's storage is the contract src/privacy/ledger.ts defines (`LedgerStore`): the ledger logic
 * assigns seq (0, 1, 2, ... per run), the tag (run, round, kind) and the time; `append` resolves only once the entry
 * is on stable storage (fsync'd). It returns the entry already recorded under the tag when that is the same release,
 * and rejects another release under a recorded tag with ConflictError ('ledger_tag') and a seq that is not the run's
 * next with ConflictError ('ledger_seq'), so two writers can neither both spend budget nor charge one round twice.
 */
export interface LedgerStoreContract extends LedgerStore {
  append(entry: LedgerEntry): Promise<LedgerEntry>;
  list(runId: string): Promise<LedgerEntry[]>;
}

export interface Budget {
  readonly runId: string;
  readonly epsilon: number;
  readonly delta: number;
  readonly updatedAt: number;
}

export interface BudgetChange {
  readonly runId: string;
  /** 1, 2, 3, ... per run. */
  readonly seq: number;
  readonly epsilon: number;
  readonly delta: number;
  /** null for the first budget of the run. */
  readonly previousEpsilon: number | null;
  readonly previousDelta: number | null;
  /** Who changed it ('admin', 'config', ...) and why; kept for audit. */
  readonly actor: string;
  readonly reason: string;
  readonly changedAt: number;
}

export interface BudgetStore {
  /** Sets the run's (ε, δ) budget and appends an audit entry, durably, in one transaction. */
  set(runId: string, budget: { readonly epsilon: number; readonly delta: number }, audit: { readonly actor: string; readonly reason: string }): Promise<Budget>;
  get(runId: string): Promise<Budget | undefined>;
  /** The audit trail, oldest first. */
  history(runId: string): Promise<BudgetChange[]>;
}

// ---- unlearning ----

/** Finer than the wire's UnlearningState: queued = PENDING; assigned, training, verifying = RUNNING; active = COMPLETED. */
export type UnlearningState = 'queued' | 'assigned' | 'training' | 'verifying' | 'active' | 'failed';

export interface UnlearningRequestRecord {
  readonly id: string;
  readonly runId: string;
  /** t: the request's position among its run's requests, from 1 (O3 makes adapter t orthogonal to 1..t−1). */
  readonly index: number;
  /** Clients holding the data; empty = every client of the run that can unlearn. */
  readonly clientIds: readonly string[];
  /** Which data to forget and how (ForgetSelector, target policy), as submitted. */
  readonly selector: JsonObject;
  readonly reason: string;
  readonly state: UnlearningState;
  readonly failureReason: string | null;
  /** Forget/retain accuracy, detector AUROC, gate overhead, ... */
  readonly metrics: JsonObject;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** When it became active; null before. */
  readonly completedAt: number | null;
  /** The unlearning adapter's blob hash once the request is active. */
  readonly resultAdapterSha: string | null;
}

export interface NewUnlearningRequest {
  readonly id: string;
  readonly runId: string;
  readonly clientIds: readonly string[];
  readonly selector: JsonObject;
  readonly reason: string;
}

export interface UnlearningStore {
  /**
   * A new request in state queued with the run's next index, in one transaction. ConflictError ('unlearning_id') for
   * a duplicate id; NotFoundError for an unknown run or client.
   */
  create(request: NewUnlearningRequest): Promise<UnlearningRequestRecord>;
  get(id: string): Promise<UnlearningRequestRecord | undefined>;
  /** Oldest first; `clientId` keeps requests that name that client. */
  list(options?: {
    readonly runId?: string;
    readonly states?: readonly UnlearningState[];
    readonly clientId?: string;
  }): Promise<UnlearningRequestRecord[]>;
  /**
   * CAS on the request state. Edges: queued→assigned, assigned→training|queued, training→verifying|queued,
   * verifying→active|training, and any non-final state → failed. `failed` requires `failureReason`; `active`
   * requires `resultAdapterSha` (a stored blob). `metrics` are merged into the request's metrics.
   */
  transition(
    id: string,
    from: UnlearningState,
    to: UnlearningState,
    detail?: { readonly failureReason?: string; readonly resultAdapterSha?: string; readonly metrics?: JsonObject },
  ): Promise<boolean>;
}

// ---- the whole store ----

export interface Store extends Disposable {
  readonly clients: ClientStore;
  readonly joinTokens: JoinTokenStore;
  readonly nonces: NonceStore;
  readonly runs: RunStore;
  readonly rounds: RoundStore;
  readonly updates: UpdateStore;
  readonly blobs: BlobStore;
  readonly ledger: LedgerStoreContract;
  readonly budgets: BudgetStore;
  readonly unlearning: UnlearningStore;
  /** Releases the database. Idempotent; every later call rejects with StoreClosedError. */
  close(): void;
  readonly isClosed: boolean;
}
