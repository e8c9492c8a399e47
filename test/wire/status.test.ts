import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkError, LimitError, NonFiniteTensorError, RpcError } from '../../src/wire/errors.js';
import type { SignedRequest } from '../../src/wire/messages.js';
import { loadLetheProto } from '../../src/wire/proto.js';
import { bindServer, createServer, unaryHandler } from '../../src/wire/server.js';
import { callUnary, createClient, type FleetClient } from '../../src/wire/services.js';
import { ERROR_CODE_KEY, fromStatus, statusName, toStatus } from '../../src/wire/status.js';

/** An error as another Lethe module (src/auth, src/store) would throw it: a named Error with a string code. */
class CodedError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

describe('status – errors to statuses (server side)', () => {
  const cases: [Error & { code: string }, status][] = [
    [new ChunkError('chunk 3 does not match', 'chunk_hash_mismatch'), status.INVALID_ARGUMENT],
    [new NonFiniteTensorError(['score.weight']), status.INVALID_ARGUMENT],
    [new LimitError('too big', 'payload_too_large'), status.RESOURCE_EXHAUSTED],
    [new CodedError('bad signature', 'bad_signature'), status.UNAUTHENTICATED],
    [new CodedError('nonce reused', 'replayed_nonce'), status.UNAUTHENTICATED],
    [new CodedError('revoked', 'revoked_client'), status.PERMISSION_DENIED],
    [new CodedError('no such run', 'not_found'), status.NOT_FOUND],
    [new CodedError('already stored', 'conflict'), status.ALREADY_EXISTS],
    [new CodedError('round 4 is closed', 'wrong_round'), status.FAILED_PRECONDITION],
    [new CodedError('upload after the deadline', 'late'), status.FAILED_PRECONDITION],
    [new CodedError('deadline passed', 'deadline_exceeded'), status.DEADLINE_EXCEEDED],
    [new CodedError('database busy', 'busy'), status.UNAVAILABLE],
  ];

  it.each(cases.map(([err, expected]) => [err.code, statusName(expected), err, expected] as const))('status – code %s becomes %s with its message', (_code, _name, err, expected) => {
    const s = toStatus(err);
    expect(s.code).toBe(expected);
    expect(s.details).toBe(err.message);
    expect(s.metadata.get(ERROR_CODE_KEY)).toEqual([err.code]);
  });

  it('status – an unknown error becomes INTERNAL without leaking its message', () => {
    const s = toStatus(new Error('SQLITE_CORRUPT at /var/lib/lethe/db.sqlite'));
    expect(s.code).toBe(status.INTERNAL);
    expect(s.details).not.toContain('SQLITE');
    expect(s.metadata.get(ERROR_CODE_KEY)).toEqual([]);
    expect(toStatus('a string').code).toBe(status.INTERNAL);
    expect(toStatus(Object.assign(new Error('ENOENT: /etc/x'), { code: 'ENOENT' })).details).not.toContain('/etc');
  });

  it('status – a known code further down the cause chain decides', () => {
    const wrapped = new Error('upload rejected', { cause: new ChunkError('chunk 2 corrupt', 'chunk_hash_mismatch') });
    const s = toStatus(wrapped);
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.details).toBe('chunk 2 corrupt');
  });

  it('status – a per-server table adds codes and overrides defaults', () => {
    expect(toStatus(new CodedError('paused', 'run_paused'), { run_paused: status.FAILED_PRECONDITION }).code).toBe(status.FAILED_PRECONDITION);
    expect(toStatus(new CodedError('busy', 'busy'), { busy: status.RESOURCE_EXHAUSTED }).code).toBe(status.RESOURCE_EXHAUSTED);
  });
});

describe('status – statuses to errors (client side)', () => {
  it('status – a ServiceError becomes an RpcError naming status and code', () => {
    const metadata = new Metadata();
    metadata.set(ERROR_CODE_KEY, 'replayed_nonce');
    const se = Object.assign(new Error('16 UNAUTHENTICATED: nonce reused'), { code: status.UNAUTHENTICATED, details: 'nonce reused', metadata }) as ServiceError;
    const err = fromStatus(se);
    expect(err).toBeInstanceOf(RpcError);
    expect(err.name).toBe('RpcError');
    expect(err.status).toBe(status.UNAUTHENTICATED);
    expect(err.code).toBe('replayed_nonce');
    expect(err.message).toBe('UNAUTHENTICATED (replayed_nonce): nonce reused');
    expect(err.cause).toBe(se);
  });

  it('status – without a Lethe code the status name stands in', () => {
    const se = Object.assign(new Error('4 DEADLINE_EXCEEDED'), { code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded', metadata: new Metadata() }) as ServiceError;
    const err = fromStatus(se);
    expect(err.code).toBe('deadline_exceeded');
    expect(err.message).toBe('DEADLINE_EXCEEDED (deadline_exceeded): Deadline exceeded');
  });
});

describe('status – round trip through a real call', () => {
  const proto = loadLetheProto();
  const server = createServer();
  let client: FleetClient;

  beforeAll(async () => {
    server.addService(proto.services.fleet, {
      Heartbeat: unaryHandler(async (request: SignedRequest) => {
        const body = proto.bodies.heartbeat.decode(request.body);
        if (body.taskId === 'slow') await new Promise((r) => setTimeout(r, 500));
        if (body.taskId === 'revoked') throw new CodedError('client c1 has been revoked', 'revoked_client');
        if (body.taskId === 'crash') throw new TypeError("Cannot read properties of undefined (reading 'x')");
        return { taskWaiting: true, serverTimeMs: 42 };
      }),
    });
    const port = await bindServer(server, '127.0.0.1:0');
    client = createClient(proto, 'fleet', `127.0.0.1:${port}`, credentials.createInsecure());
  });

  afterAll(() => {
    client.close();
    server.forceShutdown();
  });

  const heartbeat = (taskId: string, deadline?: number) =>
    callUnary(client, 'Heartbeat', { body: proto.bodies.heartbeat.encode({ taskId }) }, deadline === undefined ? {} : { deadline });

  it('status – a successful call resolves with the decoded response', async () => {
    expect(await heartbeat('ok')).toEqual({ taskWaiting: true, serverTimeMs: 42, heartbeatIntervalMs: 0, cancelTask: false });
  });

  it('status – a coded handler error arrives as the same code and message', async () => {
    const err = (await heartbeat('revoked').catch((e: unknown) => e)) as RpcError;
    expect(err.status).toBe(status.PERMISSION_DENIED);
    expect(err.code).toBe('revoked_client');
    expect(err.message).toBe('PERMISSION_DENIED (revoked_client): client c1 has been revoked');
  });

  it('status – a handler crash arrives as INTERNAL without its message', async () => {
    const err = (await heartbeat('crash').catch((e: unknown) => e)) as RpcError;
    expect(err.status).toBe(status.INTERNAL);
    expect(err.message).not.toContain('undefined');
  });

  it('status – an expired deadline arrives as DEADLINE_EXCEEDED', async () => {
    const err = (await heartbeat('slow', Date.now() + 50).catch((e: unknown) => e)) as RpcError;
    expect(err.status).toBe(status.DEADLINE_EXCEEDED);
    expect(err.code).toBe('deadline_exceeded');
  });

  it('status – a malformed body arrives as INVALID_ARGUMENT (bad_body)', async () => {
    const err = (await callUnary(client, 'Heartbeat', { body: Buffer.from([0xff, 0xff, 0xff]) }).catch((e: unknown) => e)) as RpcError;
    expect(err.status).toBe(status.INVALID_ARGUMENT);
    expect(err.code).toBe('bad_body');
  });
});
