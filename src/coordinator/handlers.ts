/**
 * The plumbing every coordinator service shares: request messages that do not parse become INVALID_ARGUMENT (not
 * grpc-js's INTERNAL), signed requests are verified in one place, calls after close are refused, and every refused
 * call gets exactly one log line and one `rejected` event. Statuses come from src/wire/status.ts toStatus with the
 * coordinator's extra codes.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import type { RequestAuthenticator } from '../auth/authenticator.js';
import type { ClientRecord } from '../store/store.js';
import { ProtocolError } from '../wire/errors.js';
import type { RequestAuth } from '../wire/messages.js';
import type { HandlerOptions } from '../wire/server.js';
import { statusName, toStatus } from '../wire/status.js';
import type { CoordinatorCore } from './core.js';
import { COORDINATOR_STATUS_TABLE, CoordinatorClosedError } from './errors.js';

/** Marks a request message whose bytes did not parse; the handler turns it into INVALID_ARGUMENT. */
const MALFORMED = Symbol('malformed');

interface Malformed {
  readonly [MALFORMED]: Error;
}

function isMalformed(m: unknown): m is Malformed {
  return typeof m === 'object' && m !== null && MALFORMED in m;
}

/**
 * The service definition with request deserializers that never throw: bad bytes become a marker the handlers see,
 * so a malformed message is the caller's INVALID_ARGUMENT and gets logged like any other refusal.
 */
export function tolerantService(definition: ServiceDefinition): ServiceDefinition {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return { [MALFORMED]: err instanceof Error ? err : new Error(String(err)) };
        }
      },
    };
  }
  return out as ServiceDefinition;
}

/** Throws ProtocolError('bad_body') when `message` was marked malformed by tolerantService. */
export function requireWellFormed<T>(message: T, what: string): T {
  if (isMalformed(message)) {
    throw new ProtocolError(`${what} is not a valid protobuf message: ${message[MALFORMED].message}`, 'bad_body', { cause: message[MALFORMED] });
  }
  return message;
}

/** Handler options: the coordinator's status table, and one log line plus one event per refused call. */
export function handlerOptions(core: CoordinatorCore): HandlerOptions {
  return {
    statusTable: COORDINATOR_STATUS_TABLE,
    onError: (err: unknown, path: string) => {
      const status = toStatus(err, COORDINATOR_STATUS_TABLE);
      const code = status.metadata?.get('lethe-error-code')[0];
      const codeText = typeof code === 'string' ? code : 'internal';
      // Internal errors keep their real message (and cause) in the log; the caller saw only a generic one.
      const detail = codeText === 'internal' ? describeInternal(err) : status.details;
      core.config.log(`rejected ${path}: ${statusName(status.code)} (${codeText}): ${detail}`);
      core.events.emit({ type: 'rejected', method: path, code: codeText, message: detail });
    },
  };
}

function describeInternal(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? ` (cause: ${err.cause.message})` : '';
  return `${err.name}: ${err.message}${cause}`;
}

export function guardOpen(core: CoordinatorCore, what: string): void {
  if (core.lifecycle.closed) throw new CoordinatorClosedError(what);
}

/** Verifies a signed request (common.proto RequestAuth) for `method` and marks its client live. */
export async function authenticate(
  core: CoordinatorCore,
  authenticator: RequestAuthenticator,
  method: string,
  auth: RequestAuth | null | undefined,
  body: Uint8Array,
): Promise<ClientRecord> {
  if (!auth) throw new ProtocolError(`${method} needs auth (a signed RequestAuth) in its first message`, 'missing_header');
  const client = await authenticator.authenticate({
    method,
    clientId: auth.clientId,
    timestampMs: auth.timestampMs,
    nonce: auth.nonce,
    payload: body,
    signature: auth.signature,
  });
  core.presence.seen(client.id);
  return client;
}
