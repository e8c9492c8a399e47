import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { classifyFailure } from '../../src/client/connection.js';
import { RpcError } from '../../src/wire/errors.js';

function rpc(s: status, code: string): RpcError {
  return new RpcError(`${status[s]} (${code}): x`, s, code, 'x');
}

describe('client connection', () => {
  it('connection – revoked, unknown and wrongly keyed clients are refused for good', () => {
    expect(classifyFailure(rpc(status.PERMISSION_DENIED, 'revoked_client'))).toBe('fatal');
    expect(classifyFailure(rpc(status.UNAUTHENTICATED, 'unknown_client'))).toBe('fatal');
    expect(classifyFailure(rpc(status.UNAUTHENTICATED, 'bad_signature'))).toBe('fatal');
  });

  it('connection – an unreachable, restarting or overloaded coordinator and clock drift are transient', () => {
    expect(classifyFailure(rpc(status.UNAVAILABLE, 'unavailable'))).toBe('transient');
    expect(classifyFailure(rpc(status.UNAVAILABLE, 'draining'))).toBe('transient');
    expect(classifyFailure(rpc(status.DEADLINE_EXCEEDED, 'deadline_exceeded'))).toBe('transient');
    expect(classifyFailure(rpc(status.UNAUTHENTICATED, 'clock_skew'))).toBe('transient');
    expect(classifyFailure(new Error('socket hang up'))).toBe('transient');
  });

  it('connection – a closed round, a wrong round or a rejected payload gives up the request only', () => {
    expect(classifyFailure(rpc(status.FAILED_PRECONDITION, 'round_closed'))).toBe('give_up');
    expect(classifyFailure(rpc(status.FAILED_PRECONDITION, 'late'))).toBe('give_up');
    expect(classifyFailure(rpc(status.INVALID_ARGUMENT, 'shape_mismatch'))).toBe('give_up');
    expect(classifyFailure(rpc(status.ALREADY_EXISTS, 'conflict'))).toBe('give_up');
  });
});
