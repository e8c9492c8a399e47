/**
 * Server plumbing: channel options, the standard health and reflection services, and handler adapters that map
 * anything a handler throws to a status in one place (src/wire/status.ts).
 */
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { dirname, relative, sep } from 'node:path';
import { Server, ServerCredentials, type ChannelOptions, type ServerUnaryCall, type ServerReadableStream, type ServerWritableStream, type handleClientStreamingCall, type handleServerStreamingCall, type handleUnaryCall } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { MAX_CHUNK_BYTES } from './codec.js';
import { LOADER_OPTIONS, SERVICE_NAMES } from './proto.js';
import { toStatus, type StatusTable } from './status.js';

/** Largest gRPC message either side accepts: a 1 MiB chunk plus headroom for a header, with a 4 MiB floor so a large
 * manifest (thousands of entries) fits. Bigger messages fail with RESOURCE_EXHAUSTED before any handler runs. */
export const MAX_MESSAGE_BYTES = 4 * MAX_CHUNK_BYTES + 64 * 1024;

/** HTTP/2 flow-control window a Lethe receiver advertises. With the protocol default of 64 KiB every 64 KiB of an
 * upload waits for a WINDOW_UPDATE round trip; 8 MiB keeps several chunks in flight. grpc-js honours it on clients. */
export const FLOW_CONTROL_WINDOW_BYTES = 8 << 20;

export const SERVER_CHANNEL_OPTIONS: Readonly<ChannelOptions> = Object.freeze({
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // Ping idle connections so a vanished client (laptop lid closed, NAT timeout) is noticed within ~1.5 min.
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
});

export const CLIENT_CHANNEL_OPTIONS: Readonly<ChannelOptions> = Object.freeze({
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // Clients sit behind NATs that drop idle flows after a few minutes; pinging every 30 s keeps the path open.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
  'grpc.initial_reconnect_backoff_ms': 1_000,
  'grpc.max_reconnect_backoff_ms': 30_000,
});

/** The grpc-js (1.14) internal that builds each listening HTTP/2 server; see createServer. */
interface ServerInternals {
  createHttp2Server?: (this: Server, credentials: ServerCredentials) => Http2Server;
}

/**
 * A grpc-js Server that also applies `grpc-node.flow_control_window` to what it receives. grpc-js honours that option
 * only on clients (grpc-node PR #3058 adds servers), so uploads would crawl through 64 KiB windows; here each HTTP/2
 * server the Server creates advertises the window per stream (SETTINGS) and opens it per connection. The hook uses
 * a grpc-js internal; `flowControlApplied` tells whether it was found (if not, everything works, only slower).
 */
export function createServer(options: ChannelOptions = SERVER_CHANNEL_OPTIONS): Server & { readonly flowControlApplied: boolean } {
  const server = new Server({ ...options });
  const window = options['grpc-node.flow_control_window'];
  const internals = server as unknown as ServerInternals;
  const build = internals.createHttp2Server;
  const applied = typeof window === 'number' && typeof build === 'function';
  if (applied) {
    internals.createHttp2Server = function (this: Server, credentials: ServerCredentials): Http2Server {
      const http2Server = build.call(this, credentials);
      http2Server.updateSettings({ initialWindowSize: window });
      http2Server.on('session', (session: ServerHttp2Session) => session.setLocalWindowSize(window));
      return http2Server;
    };
  }
  return Object.assign(server, { flowControlApplied: applied });
}

export interface StandardServices {
  readonly health: HealthImplementation;
  /** Sets every Lethe service and the server as a whole ('') to one status, e.g. NOT_SERVING while draining. */
  setServing(status: ServingStatus): void;
}

/** The include root of a proto file: the directory above `lethe/v1/` for Lethe files, else the file's directory. */
function protoRootOf(path: string): string {
  const m = /^(.*)[\\/]lethe[\\/]v1[\\/][^\\/]+\.proto$/.exec(path);
  return m ? m[1]! : dirname(path);
}

/**
 * Adds grpc.health.v1.Health (every lethe.v1 service and '' reported SERVING) and server reflection (v1 and
 * v1alpha) for the given .proto files (absolute paths; LetheProto.protoPaths).
 */
export function addStandardServices(server: Server, protoPaths: readonly string[]): StandardServices {
  const services = ['', ...Object.values(SERVICE_NAMES)];
  const health = new HealthImplementation(Object.fromEntries(services.map((n) => [n, 'SERVING' as ServingStatus])));
  health.addToServer(server);
  // Files load by their import names (lethe/v1/x.proto) so that reflection's descriptors match their imports.
  const roots = protoPaths.map(protoRootOf);
  const names = protoPaths.map((p, i) => relative(roots[i]!, p).split(sep).join('/'));
  new ReflectionService(loadSync(names, { ...LOADER_OPTIONS, includeDirs: [...new Set(roots)] })).addToServer(server);
  return Object.freeze({
    health,
    setServing(status: ServingStatus): void {
      for (const n of services) health.setStatus(n, status);
    },
  });
}

/** Binds insecurely (plaintext; put TLS in front, or pass credentials) and resolves with the bound port. */
export function bindServer(server: Server, address: string, credentials = ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Stops accepting calls and waits for running ones; forces shutdown after `graceMs`. */
export function shutdownServer(server: Server, graceMs = 5_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.forceShutdown(), graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Optional per-server extra code table and error observer (for logging the original of an INTERNAL). */
export interface HandlerOptions {
  readonly statusTable?: StatusTable;
  readonly onError?: (err: unknown, path: string) => void;
}

/** A unary handler from an async function; whatever it throws becomes a status via toStatus. */
export function unaryHandler<Req, Res>(
  fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  options: HandlerOptions = {},
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => {
        options.onError?.(err, call.getPath());
        callback(toStatus(err, options.statusTable));
      },
    );
  };
}

/** A server-streaming handler: `fn` writes to the call (src/wire/transfer.ts writeAll); the stream ends when it resolves. */
export function serverStreamHandler<Req, Res>(
  fn: (request: Req, call: ServerWritableStream<Req, Res>) => Promise<void>,
  options: HandlerOptions = {},
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    fn(call.request, call).then(
      () => {
        if (!call.writableEnded) call.end(); // writeAll may have ended it already
      },
      (err: unknown) => {
        options.onError?.(err, call.getPath());
        call.emit('error', toStatus(err, options.statusTable));
      },
    );
  };
}

/** A client-streaming handler: `fn` reads the call (it is an async iterable of requests) and returns the response. */
export function clientStreamHandler<Req, Res>(
  fn: (call: ServerReadableStream<Req, Res>) => Promise<Res>,
  options: HandlerOptions = {},
): handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    fn(call).then(
      (res) => callback(null, res),
      (err: unknown) => {
        options.onError?.(err, call.getPath());
        callback(toStatus(err, options.statusTable));
      },
    );
  };
}
