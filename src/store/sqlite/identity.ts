/** SQLite tables of who may call: clients, join tokens (hashes only) and the seen-nonce window. */
import type Database from 'better-sqlite3';
import { ConflictError, NotFoundError } from '../errors.js';
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
import { asBuffer, type SqliteContext } from './context.js';

interface ClientRow {
  id: string;
  name: string;
  public_key: Buffer;
  capabilities: string;
  enrolled_at: number;
  revoked_at: number | null;
}

interface TokenRow {
  hash: Buffer;
  expires_at: number;
  uses_left: number;
  created_at: number;
}

function toClient(row: ClientRow): ClientRecord {
  return {
    id: row.id,
    name: row.name,
    publicKey: new Uint8Array(row.public_key),
    capabilities: decodeJsonObject(row.capabilities),
    enrolledAt: row.enrolled_at,
    revokedAt: row.revoked_at,
  };
}

function toToken(row: TokenRow): JoinTokenRecord {
  return { hash: new Uint8Array(row.hash), expiresAt: row.expires_at, usesLeft: row.uses_left, createdAt: row.created_at };
}

export class SqliteJoinTokens implements JoinTokenStore {
  private readonly insert: Database.Statement;
  private readonly byHash: Database.Statement;
  private readonly spend: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly removeDead: Database.Statement;

  constructor(private readonly ctx: SqliteContext) {
    const db = ctx.db;
    this.insert = db.prepare('INSERT INTO join_tokens (hash, expires_at, uses_left, created_at) VALUES (?, ?, ?, ?)');
    this.byHash = db.prepare('SELECT * FROM join_tokens WHERE hash = ?');
    this.spend = db.prepare('UPDATE join_tokens SET uses_left = uses_left - 1 WHERE hash = ?');
    this.remove = db.prepare('DELETE FROM join_tokens WHERE hash = ?');
    this.removeDead = db.prepare('DELETE FROM join_tokens WHERE expires_at <= ? OR uses_left = 0');
  }

  create(token: { hash: Uint8Array; expiresAt: number; uses: number }): Promise<JoinTokenRecord> {
    return this.ctx.write('create a join token', () => {
      const hash = checkBytes(token.hash, 'join token hash', 32);
      const expiresAt = checkInt(token.expiresAt, 'expiresAt');
      const uses = checkInt(token.uses, 'uses', 1);
      if (this.byHash.get(asBuffer(hash)) !== undefined) throw new ConflictError('join token already exists', 'join_token');
      const createdAt = this.ctx.now();
      this.insert.run(asBuffer(hash), expiresAt, uses, createdAt);
      return { hash: new Uint8Array(hash), expiresAt, usesLeft: uses, createdAt };
    });
  }

  get(hash: Uint8Array): Promise<JoinTokenRecord | undefined> {
    return this.ctx.read('read a join token', () => {
      checkBytes(hash, 'join token hash', 32);
      const row = this.byHash.get(asBuffer(hash)) as TokenRow | undefined;
      return row && toToken(row);
    });
  }

  redeem(hash: Uint8Array, nowMs: number): Promise<TokenRedemption> {
    return this.ctx.write('redeem a join token', () => {
      checkBytes(hash, 'join token hash', 32);
      checkInt(nowMs, 'nowMs');
      return this.redeemInTransaction(hash, nowMs);
    });
  }

  /** The redemption step, for callers already inside a write transaction (enrollment). */
  redeemInTransaction(hash: Uint8Array, nowMs: number): TokenRedemption {
    const row = this.byHash.get(asBuffer(hash)) as TokenRow | undefined;
    if (row === undefined) return { ok: false, reason: 'unknown' };
    if (row.expires_at <= nowMs) return { ok: false, reason: 'expired' };
    if (row.uses_left === 0) return { ok: false, reason: 'exhausted' };
    this.spend.run(asBuffer(hash));
    return { ok: true, usesLeft: row.uses_left - 1 };
  }

  revoke(hash: Uint8Array): Promise<boolean> {
    return this.ctx.write('revoke a join token', () => {
      checkBytes(hash, 'join token hash', 32);
      return this.remove.run(asBuffer(hash)).changes === 1;
    });
  }

  prune(nowMs: number): Promise<number> {
    return this.ctx.write('prune join tokens', () => {
      checkInt(nowMs, 'nowMs');
      return this.removeDead.run(nowMs).changes;
    });
  }
}

export class SqliteClients implements ClientStore {
  private readonly insert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly byKey: Database.Statement;
  private readonly all: Database.Statement;
  private readonly live: Database.Statement;
  private readonly setRevoked: Database.Statement;
  private readonly setCapabilities: Database.Statement;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly tokens: SqliteJoinTokens,
  ) {
    const db = ctx.db;
    this.insert = db.prepare(
      'INSERT INTO clients (id, name, public_key, capabilities, enrolled_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL)',
    );
    this.byId = db.prepare('SELECT * FROM clients WHERE id = ?');
    this.byKey = db.prepare('SELECT * FROM clients WHERE public_key = ?');
    this.all = db.prepare('SELECT * FROM clients ORDER BY enrolled_at, id');
    this.live = db.prepare('SELECT * FROM clients WHERE revoked_at IS NULL ORDER BY enrolled_at, id');
    this.setRevoked = db.prepare('UPDATE clients SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
    this.setCapabilities = db.prepare('UPDATE clients SET capabilities = ? WHERE id = ?');
  }

  enroll(client: NewClient, joinToken?: { hash: Uint8Array; nowMs: number }): Promise<EnrollOutcome> {
    return this.ctx.write('enroll a client', (): EnrollOutcome => {
      const id = checkId(client.id, 'client id');
      const name = checkText(client.name, 'client name', 256);
      const publicKey = checkBytes(client.publicKey, 'public key', 32);
      const capabilities = encodeJsonObject(client.capabilities, 'capabilities');
      if (joinToken !== undefined) {
        checkBytes(joinToken.hash, 'join token hash', 32);
        checkInt(joinToken.nowMs, 'nowMs');
      }
      if (joinToken !== undefined) {
        const spent = this.tokens.redeemInTransaction(joinToken.hash, joinToken.nowMs);
        if (!spent.ok) return spent;
      }
      // Throwing rolls the token use back with the rest of the transaction.
      if (this.byId.get(id) !== undefined) throw new ConflictError(`client id ${id} is already enrolled`, 'client_id');
      const holder = this.byKey.get(asBuffer(publicKey)) as ClientRow | undefined;
      if (holder !== undefined) {
        // Revoked keys stay taken: a leaked key must not be enrollable again.
        throw new ConflictError(`this public key is already enrolled as client ${holder.id}; generate a new key pair`, 'public_key');
      }
      const enrolledAt = this.ctx.now();
      this.insert.run(id, name, asBuffer(publicKey), capabilities, enrolledAt);
      return { ok: true, client: toClient(this.byId.get(id) as ClientRow) };
    });
  }

  get(id: string): Promise<ClientRecord | undefined> {
    return this.ctx.read('read a client', () => {
      checkId(id, 'client id');
      const row = this.byId.get(id) as ClientRow | undefined;
      return row && toClient(row);
    });
  }

  getByPublicKey(publicKey: Uint8Array): Promise<ClientRecord | undefined> {
    return this.ctx.read('read a client', () => {
      checkBytes(publicKey, 'public key', 32);
      const row = this.byKey.get(asBuffer(publicKey)) as ClientRow | undefined;
      return row && toClient(row);
    });
  }

  list(options: { includeRevoked?: boolean } = {}): Promise<ClientRecord[]> {
    return this.ctx.read('list clients', () => {
      const statement = options.includeRevoked === true ? this.all : this.live;
      return (statement.all() as ClientRow[]).map(toClient);
    });
  }

  revoke(id: string): Promise<boolean> {
    return this.ctx.write('revoke a client', () => {
      checkId(id, 'client id');
      if (this.byId.get(id) === undefined) throw new NotFoundError('client', id);
      return this.setRevoked.run(this.ctx.now(), id).changes === 1;
    });
  }

  updateCapabilities(id: string, capabilities: JsonObject): Promise<void> {
    return this.ctx.write('update client capabilities', () => {
      checkId(id, 'client id');
      const text = encodeJsonObject(capabilities, 'capabilities');
      if (this.setCapabilities.run(text, id).changes === 0) throw new NotFoundError('client', id);
    });
  }
}

export class SqliteNonces implements NonceStore {
  private readonly insert: Database.Statement;
  private readonly clientExists: Database.Statement;
  private readonly removeOld: Database.Statement;

  constructor(private readonly ctx: SqliteContext) {
    const db = ctx.db;
    this.insert = db.prepare('INSERT INTO nonces (client_id, nonce, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    this.clientExists = db.prepare('SELECT 1 FROM clients WHERE id = ?');
    this.removeOld = db.prepare('DELETE FROM nonces WHERE ts < ?');
  }

  insertIfAbsent(clientId: string, nonce: Uint8Array, timestampMs: number): Promise<boolean> {
    return this.ctx.write('record a nonce', () => {
      checkId(clientId, 'client id');
      checkBytes(nonce, 'nonce', { min: 1, max: 64 });
      checkInt(timestampMs, 'timestampMs');
      if (this.clientExists.get(clientId) === undefined) throw new NotFoundError('client', clientId);
      return this.insert.run(clientId, asBuffer(nonce), timestampMs).changes === 1;
    });
  }

  pruneBefore(cutoffMs: number): Promise<number> {
    return this.ctx.write('prune nonces', () => {
      checkInt(cutoffMs, 'cutoffMs');
      return this.removeOld.run(cutoffMs).changes;
    });
  }
}
