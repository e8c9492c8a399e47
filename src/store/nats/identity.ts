/**
 * Who may call, in JetStream KV: clients, join tokens (hashes only) and the seen-nonce window.
 *
 * Enrollment has two uniqueness rules (client id, public key), so it takes three writes: the client document is
 * created `pending`, then the public-key index entry is created (the linearisation point: whoever creates it owns the
 * key), then the document is confirmed. A pending document counts as enrolled only when the index points at it, so
 * readers never see a half-enrolled client; one left behind by a crash is taken over by a new enrollment of the same
 * id after `pendingGraceMs`. A refused enrollment gives its join-token use back.
 */
import type { KV } from 'nats';
import { ConflictError, NotFoundError, StoreBusyError } from '../errors.js';
import type {
  ClientRecord,
  ClientStore,
  EnrollOutcome,
  JoinTokenRecord,
  JoinTokenStore,
  JsonObject,
  NewClient,
  NonceStore,
  TokenRedemption,
} from '../store.js';
import { checkBytes, checkId, checkInt, checkText, decodeJsonObject, encodeJsonObject } from '../validate.js';
import { hexToken, keyToken, type NatsContext, type Versioned } from './context.js';

interface ClientDoc {
  readonly id: string;
  readonly name: string;
  /** base64 of the raw 32-byte key. */
  readonly publicKey: string;
  readonly capabilities: JsonObject;
  readonly enrolledAt: number;
  readonly revokedAt: number | null;
  /** True between creating the document and confirming it (see the module comment). */
  readonly pending: boolean;
}

interface TokenDoc {
  readonly expiresAt: number;
  readonly usesLeft: number;
  readonly createdAt: number;
}

function toClient(doc: ClientDoc): ClientRecord {
  return {
    id: doc.id,
    name: doc.name,
    publicKey: new Uint8Array(Buffer.from(doc.publicKey, 'base64')),
    capabilities: doc.capabilities,
    enrolledAt: doc.enrolledAt,
    revokedAt: doc.revokedAt,
  };
}

function toToken(hash: Uint8Array, doc: TokenDoc): JoinTokenRecord {
  return { hash: new Uint8Array(hash), expiresAt: doc.expiresAt, usesLeft: doc.usesLeft, createdAt: doc.createdAt };
}

function keyOf(publicKey: Uint8Array | string): string {
  return typeof publicKey === 'string' ? Buffer.from(publicKey, 'base64').toString('hex') : hexToken(publicKey);
}

export class NatsJoinTokens implements JoinTokenStore {
  constructor(
    private readonly ctx: NatsContext,
    private readonly kv: KV,
  ) {}

  create(token: { hash: Uint8Array; expiresAt: number; uses: number }): Promise<JoinTokenRecord> {
    return this.ctx.op('create a join token', async () => {
      const hash = checkBytes(token.hash, 'join token hash', 32);
      const expiresAt = checkInt(token.expiresAt, 'expiresAt');
      const uses = checkInt(token.uses, 'uses', 1);
      const doc: TokenDoc = { expiresAt, usesLeft: uses, createdAt: this.ctx.now() };
      if ((await this.ctx.create(this.kv, hexToken(hash), doc)) === undefined) {
        throw new ConflictError('join token already exists', 'join_token');
      }
      return toToken(hash, doc);
    });
  }

  get(hash: Uint8Array): Promise<JoinTokenRecord | undefined> {
    return this.ctx.op('read a join token', async () => {
      checkBytes(hash, 'join token hash', 32);
      const found = await this.ctx.get<TokenDoc>(this.kv, hexToken(hash));
      return found && toToken(hash, found.doc);
    });
  }

  redeem(hash: Uint8Array, nowMs: number): Promise<TokenRedemption> {
    return this.ctx.op('redeem a join token', async () => {
      checkBytes(hash, 'join token hash', 32);
      checkInt(nowMs, 'nowMs');
      return this.spend(hash, nowMs);
    });
  }

  /** Spends one use (CAS on the token document); validated arguments, for enrollment too. */
  spend(hash: Uint8Array, nowMs: number): Promise<TokenRedemption> {
    return this.ctx.mutate<TokenDoc, TokenRedemption>(this.kv, hexToken(hash), 'redeem a join token', (current) => {
      if (current === undefined) return { result: { ok: false, reason: 'unknown' } };
      const doc = current.doc;
      if (doc.expiresAt <= nowMs) return { result: { ok: false, reason: 'expired' } };
      if (doc.usesLeft === 0) return { result: { ok: false, reason: 'exhausted' } };
      return { result: { ok: true, usesLeft: doc.usesLeft - 1 }, write: { ...doc, usesLeft: doc.usesLeft - 1 } };
    });
  }

  /** Gives back a use spent by an enrollment that was then refused (a token pruned meanwhile stays gone). */
  giveBack(hash: Uint8Array): Promise<void> {
    return this.ctx.mutate<TokenDoc, void>(this.kv, hexToken(hash), 'give back a join token use', (current) =>
      current === undefined ? { result: undefined } : { result: undefined, write: { ...current.doc, usesLeft: current.doc.usesLeft + 1 } },
    );
  }

  revoke(hash: Uint8Array): Promise<boolean> {
    return this.ctx.op('revoke a join token', async () => {
      checkBytes(hash, 'join token hash', 32);
      const key = hexToken(hash);
      // Revision-checked, so of two revokes racing exactly one reports true.
      for (let attempt = 0; attempt < this.ctx.config.casAttempts; attempt++) {
        const found = await this.ctx.get<TokenDoc>(this.kv, key);
        if (found === undefined) return false;
        if (await this.ctx.deleteAt(this.kv, key, found.revision)) return true;
      }
      throw new StoreBusyError('revoke a join token (it kept changing under other writers)');
    });
  }

  prune(nowMs: number): Promise<number> {
    return this.ctx.op('prune join tokens', async () => {
      checkInt(nowMs, 'nowMs');
      const all = await this.ctx.snapshot<TokenDoc>(this.kv);
      const dead = [...all].filter(([, t]) => t.doc.expiresAt <= nowMs || t.doc.usesLeft === 0);
      // Revision-checked: a use given back meanwhile keeps the token.
      const removed = await Promise.all(dead.map(([key, t]) => this.ctx.deleteAt(this.kv, key, t.revision)));
      return removed.filter(Boolean).length;
    });
  }
}

export class NatsClients implements ClientStore {
  /** Ids known to be enrolled: clients are never deleted, so a positive answer can be cached. */
  private readonly known = new Set<string>();

  constructor(
    private readonly ctx: NatsContext,
    private readonly kv: KV,
    private readonly index: KV,
    private readonly tokens: NatsJoinTokens,
    private readonly pendingGraceMs: number,
  ) {}

  enroll(client: NewClient, joinToken?: { hash: Uint8Array; nowMs: number }): Promise<EnrollOutcome> {
    return this.ctx.op('enroll a client', async (): Promise<EnrollOutcome> => {
      const id = checkId(client.id, 'client id');
      const name = checkText(client.name, 'client name', 256);
      const publicKey = checkBytes(client.publicKey, 'public key', 32);
      const capabilities = JSON.parse(encodeJsonObject(client.capabilities, 'capabilities')) as JsonObject;
      if (joinToken !== undefined) {
        checkBytes(joinToken.hash, 'join token hash', 32);
        checkInt(joinToken.nowMs, 'nowMs');
        const spent = await this.tokens.spend(joinToken.hash, joinToken.nowMs);
        if (!spent.ok) return spent;
      }
      const doc: ClientDoc = {
        id,
        name,
        publicKey: Buffer.from(publicKey).toString('base64'),
        capabilities,
        enrolledAt: this.ctx.now(),
        revokedAt: null,
        pending: true,
      };
      try {
        const record = await this.add(doc);
        this.known.add(id);
        return { ok: true, client: record };
      } catch (err) {
        if (joinToken !== undefined) await this.tokens.giveBack(joinToken.hash);
        throw err;
      }
    });
  }

  private async add(doc: ClientDoc): Promise<ClientRecord> {
    const key = keyToken(doc.id);
    let revision = await this.ctx.create(this.kv, key, doc);
    if (revision === undefined) revision = await this.takeOverAbandoned(key, doc);
    const indexKey = keyOf(doc.publicKey);
    if ((await this.ctx.create(this.index, indexKey, { id: doc.id })) === undefined) {
      const holder = await this.ctx.get<{ id: string }>(this.index, indexKey);
      if (holder?.doc.id !== doc.id) {
        await this.ctx.deleteAt(this.kv, key, revision);
        // Revoked keys stay taken: a leaked key must not be enrollable again.
        throw new ConflictError(`this public key is already enrolled as client ${holder?.doc.id ?? '?'}; generate a new key pair`, 'public_key');
      }
    }
    const confirmed: ClientDoc = { ...doc, pending: false };
    if ((await this.ctx.update(this.kv, key, confirmed, revision)) === undefined) {
      // Only a take-over changes a pending document, and it then owns the id.
      throw new ConflictError(`client id ${doc.id} is already enrolled`, 'client_id');
    }
    return toClient(confirmed);
  }

  /** The revision of our document written over an abandoned pending one, or ConflictError('client_id'). */
  private async takeOverAbandoned(key: string, doc: ClientDoc): Promise<number> {
    const existing = await this.ctx.get<ClientDoc>(this.kv, key);
    const abandoned =
      existing !== undefined &&
      (await this.resolve(existing)) === undefined &&
      Date.now() - existing.storedAt >= this.pendingGraceMs;
    const revision = abandoned ? await this.ctx.update(this.kv, key, doc, existing.revision) : undefined;
    if (revision === undefined) throw new ConflictError(`client id ${doc.id} is already enrolled`, 'client_id');
    return revision;
  }

  /** The client a stored document stands for: confirmed, or pending with the key index pointing at it. */
  private async resolve(found: Versioned<ClientDoc> | undefined): Promise<ClientDoc | undefined> {
    if (found === undefined) return undefined;
    if (!found.doc.pending) return found.doc;
    const holder = await this.ctx.get<{ id: string }>(this.index, keyOf(found.doc.publicKey));
    return holder?.doc.id === found.doc.id ? found.doc : undefined;
  }

  /** The enrolled client, or undefined; validated id. */
  async lookup(id: string): Promise<ClientRecord | undefined> {
    const doc = await this.resolve(await this.ctx.get<ClientDoc>(this.kv, keyToken(id)));
    if (doc === undefined) return undefined;
    this.known.add(id);
    return toClient(doc);
  }

  /** NotFoundError unless `id` is an enrolled client. */
  async require(id: string): Promise<void> {
    if (!this.known.has(id) && (await this.lookup(id)) === undefined) throw new NotFoundError('client', id);
  }

  get(id: string): Promise<ClientRecord | undefined> {
    return this.ctx.op('read a client', () => this.lookup(checkId(id, 'client id')));
  }

  getByPublicKey(publicKey: Uint8Array): Promise<ClientRecord | undefined> {
    return this.ctx.op('read a client', async () => {
      checkBytes(publicKey, 'public key', 32);
      const holder = await this.ctx.get<{ id: string }>(this.index, hexToken(publicKey));
      if (holder === undefined) return undefined;
      const client = await this.lookup(holder.doc.id);
      return client && Buffer.from(client.publicKey).equals(Buffer.from(publicKey)) ? client : undefined;
    });
  }

  list(options: { includeRevoked?: boolean } = {}): Promise<ClientRecord[]> {
    return this.ctx.op('list clients', async () => {
      const all = await this.ctx.snapshot<ClientDoc>(this.kv);
      const docs = await Promise.all([...all.values()].map((found) => this.resolve(found)));
      return docs
        .filter((d): d is ClientDoc => d !== undefined && (options.includeRevoked === true || d.revokedAt === null))
        .sort((a, b) => a.enrolledAt - b.enrolledAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map(toClient);
    });
  }

  revoke(id: string): Promise<boolean> {
    return this.ctx.op('revoke a client', async () => {
      checkId(id, 'client id');
      return this.change(id, 'revoke a client', (doc) => (doc.revokedAt !== null ? undefined : { ...doc, revokedAt: this.ctx.now() }));
    });
  }

  updateCapabilities(id: string, capabilities: JsonObject): Promise<void> {
    return this.ctx.op('update client capabilities', async () => {
      checkId(id, 'client id');
      const parsed = decodeJsonObject(encodeJsonObject(capabilities, 'capabilities'));
      await this.change(id, 'update client capabilities', (doc) => ({ ...doc, capabilities: parsed }));
    });
  }

  /** CAS on an enrolled client's document; `edit` returns undefined for "no change". True when it wrote. */
  private async change(id: string, what: string, edit: (doc: ClientDoc) => ClientDoc | undefined): Promise<boolean> {
    return this.ctx.mutate<ClientDoc, boolean>(this.kv, keyToken(id), what, async (current) => {
      const doc = await this.resolve(current);
      if (doc === undefined) throw new NotFoundError('client', id);
      const next = edit({ ...doc, pending: false });
      return next === undefined ? { result: false } : { result: true, write: next };
    });
  }
}

export class NatsNonces implements NonceStore {
  constructor(
    private readonly ctx: NatsContext,
    private readonly kv: KV,
    private readonly clients: NatsClients,
  ) {}

  insertIfAbsent(clientId: string, nonce: Uint8Array, timestampMs: number): Promise<boolean> {
    return this.ctx.op('record a nonce', async () => {
      checkId(clientId, 'client id');
      checkBytes(nonce, 'nonce', { min: 1, max: 64 });
      checkInt(timestampMs, 'timestampMs');
      await this.clients.require(clientId);
      // kv.create is exactly insert-if-absent: it fails when the key holds a value.
      return (await this.ctx.create(this.kv, `${keyToken(clientId)}.${hexToken(nonce)}`, { ts: timestampMs })) !== undefined;
    });
  }

  pruneBefore(cutoffMs: number): Promise<number> {
    return this.ctx.op('prune nonces', async () => {
      checkInt(cutoffMs, 'cutoffMs');
      const all = await this.ctx.snapshot<{ ts: number }>(this.kv);
      const old = [...all].filter(([, n]) => n.doc.ts < cutoffMs);
      const removed = await Promise.all(old.map(([key, n]) => this.ctx.deleteAt(this.kv, key, n.revision)));
      return removed.filter(Boolean).length;
    });
  }
}
