/**
 * The client's side of FleetService (fleet.proto): every request signed with the client key (common.proto
 * RequestAuth), timestamps kept within the coordinator's window by tracking its clock, tensors moved with the wire
 * codec. Failed calls reject with RpcError (src/wire/status.ts fromStatus); `classifyFailure` says what the node
 * should do about one.
 */
import { Metadata, status as Status, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import type { KeyObject } from 'node:crypto';
import { newNonce, signRequest } from '../auth/signing.js';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import type { UnlearningRequest } from '../wire/admin-messages.js';
import { type AssemblyLimits, type EncodedTensors } from '../wire/codec.js';
import { RpcError } from '../wire/errors.js';
import type {
  Capabilities,
  HeartbeatBody,
  HeartbeatResponse,
  MessageInput,
  OwnUnlearningBody,
  PullTaskResponse,
  PushUpdateRequest,
  PushUpdateResponse,
  ReportFailureBody,
  RequestAuth,
  UpdateHeader,
} from '../wire/messages.js';
import { methodPath, type LetheProto } from '../wire/proto.js';
import { CLIENT_CHANNEL_OPTIONS } from '../wire/server.js';
import { fromStatus, isServiceError } from '../wire/status.js';
import { callUnary, clientStreamCall, createClient, type EnrollmentClient, type FleetClient } from '../wire/services.js';
import { completeAdapter, pushUpdateMessages, receiveAdapter, writeAll } from '../wire/transfer.js';

/**
 * The shared client channel options, with grpc-js's own reconnect backoff capped at the node's (5 s): after a
 * coordinator restart the channel must try again within seconds, not after grpc's default 30 s ceiling.
 */
export const NODE_CHANNEL_OPTIONS: Readonly<ChannelOptions> = Object.freeze({
  ...CLIENT_CHANNEL_OPTIONS,
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 5_000,
});

/** What a failed call means for the node. */
export type FailureClass =
  /** Refused for good (revoked, unknown client, a key the coordinator does not accept): stop the node. */
  | 'fatal'
  /** The coordinator is unreachable, restarting or overloaded, or our clock drifted: wait and try again. */
  | 'transient'
  /** This request cannot succeed (round closed, not sampled, invalid): give it up, carry on with the next task. */
  | 'give_up';

const FATAL_CODES = new Set(['revoked_client', 'unknown_client', 'bad_signature', 'permission_denied']);
const TRANSIENT_STATUSES = new Set<Status>([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.CANCELLED, Status.RESOURCE_EXHAUSTED, Status.ABORTED, Status.UNKNOWN, Status.INTERNAL]);
const TRANSIENT_CODES = new Set(['clock_skew', 'replayed_nonce', 'draining', 'busy']);

export function classifyFailure(err: unknown): FailureClass {
  if (!(err instanceof RpcError)) return 'transient'; // a broken stream or socket surfaces as a plain Error
  if (FATAL_CODES.has(err.code) || err.status === Status.PERMISSION_DENIED) return 'fatal';
  if (TRANSIENT_STATUSES.has(err.status) || TRANSIENT_CODES.has(err.code)) return 'transient';
  return 'give_up';
}

export interface ConnectionOptions {
  readonly proto: LetheProto;
  /** host:port of the coordinator. */
  readonly address: string;
  readonly credentials: ChannelCredentials;
  readonly clientId: string;
  readonly privateKey: KeyObject;
  /** Date.now; injected for tests. */
  readonly clock?: () => number;
  /** Per-call deadline of the short unary calls (Heartbeat, ReportFailure), ms. Default 10 s. */
  readonly callTimeoutMs?: number;
}

export class FleetConnection {
  private readonly client: FleetClient;
  private readonly enrollment: EnrollmentClient;
  private readonly clock: () => number;
  private readonly timeoutMs: number;
  /** Coordinator clock − local clock, ms, from the last answer that carried server_time_ms. */
  private offsetMs = 0;

  constructor(private readonly options: ConnectionOptions) {
    this.client = createClient(options.proto, 'fleet', options.address, options.credentials, NODE_CHANNEL_OPTIONS);
    this.enrollment = createClient(options.proto, 'enrollment', options.address, options.credentials, NODE_CHANNEL_OPTIONS);
    this.clock = options.clock ?? Date.now;
    this.timeoutMs = options.callTimeoutMs ?? 10_000;
  }

  /** Our estimate of the coordinator's clock, used for timestamps and task deadlines. */
  serverNow(): number {
    return this.clock() + this.offsetMs;
  }

  /** RequestAuth for `method` over `body`, with a fresh nonce. */
  private auth(method: string, body: Uint8Array, service: 'fleet' | 'enrollment' = 'fleet'): MessageInput<RequestAuth> {
    const fields = { method: methodPath(service, method), clientId: this.options.clientId, timestampMs: Math.round(this.serverNow()), nonce: newNonce(), payload: body };
    return { clientId: fields.clientId, timestampMs: fields.timestampMs, nonce: fields.nonce, signature: signRequest(this.options.privateKey, fields) };
  }

  private observeServerTime(serverTimeMs: number, sentAt: number): void {
    if (serverTimeMs > 0) this.offsetMs = serverTimeMs - (sentAt + this.clock()) / 2;
  }

  async heartbeat(body: MessageInput<HeartbeatBody>): Promise<HeartbeatResponse> {
    const bytes = this.options.proto.bodies.heartbeat.encode(body);
    const sentAt = this.clock();
    const res = await callUnary(this.client, 'Heartbeat', { auth: this.auth('Heartbeat', bytes), body: bytes }, { deadline: sentAt + this.timeoutMs });
    this.observeServerTime(res.serverTimeMs, sentAt);
    return res;
  }

  /** Long poll: the coordinator answers when a task is ready or after about `waitMs`; `signal` cancels the call. */
  pullTask(waitMs: number, signal?: AbortSignal): Promise<PullTaskResponse> {
    const bytes = this.options.proto.bodies.pullTask.encode({ waitMs });
    const request = { auth: this.auth('PullTask', bytes), body: bytes };
    return new Promise((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = this.client.PullTask(request, new Metadata(), { deadline: this.clock() + waitMs + this.timeoutMs }, (err, res) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(isServiceError(err) ? fromStatus(err) : err);
        else resolve(res!);
      });
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** EnrollmentService.UpdateCapabilities: what this client can run now (backend, data size, modes). */
  async updateCapabilities(capabilities: MessageInput<Capabilities>): Promise<void> {
    const bytes = this.options.proto.bodies.capabilities.encode(capabilities);
    const auth = this.auth('UpdateCapabilities', bytes, 'enrollment');
    await callUnary(this.enrollment, 'UpdateCapabilities', { auth, body: bytes }, { deadline: this.clock() + this.timeoutMs });
  }

  /**
   * Downloads and verifies (chunk digests, total SHA-256, finiteness) a stored payload. With `held`, an earlier adapter
   * of the same run, asks for the adapter without the tensors the run keeps frozen and puts `held`'s back in; a whole
   * that does not hash to `sha256` is fetched again in full. `bytes`: what came over the wire.
   */
  async fetchAdapter(
    runId: string,
    sha256: Uint8Array,
    limits: Partial<AssemblyLimits>,
    timeoutMs: number,
    held?: TensorMap,
  ): Promise<{ tensors: Map<string, HostTensor>; bytes: number }> {
    if (held) {
      const { manifest, tensors } = await this.download(runId, sha256, true, limits, timeoutMs);
      const whole = manifest.sha256.equals(sha256) ? tensors : completeAdapter(held, tensors, sha256);
      if (whole) return { tensors: whole, bytes: manifest.totalBytes };
    }
    const { manifest, tensors } = await this.download(runId, sha256, false, limits, timeoutMs);
    if (!manifest.sha256.equals(sha256)) {
      throw new RpcError('FetchAdapter answered with another payload than the one asked for', Status.INTERNAL, 'wrong_payload', '');
    }
    return { tensors, bytes: manifest.totalBytes };
  }

  private async download(runId: string, sha256: Uint8Array, omitFrozen: boolean, limits: Partial<AssemblyLimits>, timeoutMs: number) {
    const bytes = this.options.proto.bodies.fetchAdapter.encode({ runId, sha256, omitFrozen });
    const call = this.client.FetchAdapter({ auth: this.auth('FetchAdapter', bytes), body: bytes }, new Metadata(), { deadline: this.clock() + timeoutMs });
    try {
      return await receiveAdapter(call, limits);
    } catch (err) {
      call.cancel();
      throw asRpcError(err);
    }
  }

  /**
   * Uploads an encoded update: the signed header (with the payload's manifest) and the first chunk, then the other
   * chunks with backpressure. A retry re-signs (fresh nonce) the same header, so the coordinator sees the same
   * payload SHA-256 and answers RESULT_DUPLICATE if the first attempt was stored.
   */
  async pushUpdate(header: MessageInput<UpdateHeader>, encoded: EncodedTensors, timeoutMs: number): Promise<PushUpdateResponse> {
    const body = this.options.proto.bodies.updateHeader.encode({ ...header, manifest: encoded.manifest });
    const { stream, response } = clientStreamCall<MessageInput<PushUpdateRequest>, PushUpdateResponse>((cb) =>
      this.client.PushUpdate(new Metadata(), { deadline: this.clock() + timeoutMs }, cb),
    );
    // A write fails when the call does; the response then carries the status, which is the error worth reporting.
    const written = writeAll(stream, pushUpdateMessages(this.auth('PushUpdate', body), body, encoded)).catch(() => undefined);
    const [, res] = await Promise.all([written, response]);
    return res;
  }

  async reportFailure(body: MessageInput<ReportFailureBody>): Promise<void> {
    const bytes = this.options.proto.bodies.reportFailure.encode(body);
    await callUnary(this.client, 'ReportFailure', { auth: this.auth('ReportFailure', bytes), body: bytes }, { deadline: this.clock() + this.timeoutMs });
  }

  /** FleetService.SubmitUnlearning: asks, as this client, that the federation forget some of its own data. */
  submitUnlearning(body: MessageInput<OwnUnlearningBody>): Promise<UnlearningRequest> {
    const bytes = this.options.proto.bodies.ownUnlearning.encode(body);
    return callUnary(this.client, 'SubmitUnlearning', { auth: this.auth('SubmitUnlearning', bytes), body: bytes }, { deadline: this.clock() + this.timeoutMs });
  }

  close(): void {
    this.client.close();
    this.enrollment.close();
  }
}

/** A stream's error as an RpcError when it carries a gRPC status (grpc-js emits a ServiceError on the stream). */
function asRpcError(err: unknown): unknown {
  return isServiceError(err) ? fromStatus(err) : err;
}
