/**
 * Typed views of the four lethe.v1 services: what a server implements (handlers receive decoded messages, reply with
 * MessageInput) and what a client calls, plus a promise wrapper that turns failed calls into RpcError.
 */
import {
  Metadata,
  makeGenericClientConstructor,
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  type ServiceError,
  type UntypedServiceImplementation,
  type handleClientStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type requestCallback,
} from '@grpc/grpc-js';
import type * as A from './admin-messages.js';
import type * as M from './messages.js';
import { SERVICE_NAMES, type LetheProto, type ServiceKey } from './proto.js';
import { CLIENT_CHANNEL_OPTIONS } from './server.js';
import { fromStatus, isServiceError } from './status.js';

type In<T> = M.MessageInput<T>;
type Unary<Req, Res> = handleUnaryCall<Req, In<Res>>;

export interface EnrollmentHandlers extends UntypedServiceImplementation {
  Enroll: Unary<M.SignedRequest, M.EnrollResponse>;
  UpdateCapabilities: Unary<M.SignedRequest, M.Ack>;
}

export interface FleetHandlers extends UntypedServiceImplementation {
  Heartbeat: Unary<M.SignedRequest, M.HeartbeatResponse>;
  PullTask: Unary<M.SignedRequest, M.PullTaskResponse>;
  FetchAdapter: handleServerStreamingCall<M.SignedRequest, In<M.FetchAdapterResponse>>;
  PushUpdate: handleClientStreamingCall<M.PushUpdateRequest, In<M.PushUpdateResponse>>;
  ReportFailure: Unary<M.SignedRequest, M.Ack>;
  SubmitUnlearning: Unary<M.SignedRequest, A.UnlearningRequest>;
}

/** AdminService and InferenceService (all unary): method → [request, response]; handlers and clients derive from it. */
interface AdminMethods {
  CreateJoinToken: [A.CreateJoinTokenRequest, A.JoinToken];
  ListClients: [A.ListClientsRequest, A.ListClientsResponse];
  RevokeClient: [A.RevokeClientRequest, A.ClientInfo];
  CreateRun: [A.CreateRunRequest, A.Run];
  ListRuns: [A.PageRequest, A.ListRunsResponse];
  GetRun: [A.GetRunRequest, A.Run];
  ListRounds: [A.ListRoundsRequest, A.ListRoundsResponse];
  Status: [Record<string, never>, A.CoordinatorStatus];
  RaiseBudget: [A.RaiseBudgetRequest, A.Run];
  SubmitUnlearning: [A.SubmitUnlearningRequest, A.UnlearningRequest];
  GetUnlearning: [A.GetUnlearningRequest, A.UnlearningRequest];
  ListUnlearning: [A.ListUnlearningRequest, A.ListUnlearningResponse];
}

interface InferenceMethods {
  Predict: [A.PredictRequest, A.PredictResponse];
}

export type AdminHandlers = UntypedServiceImplementation & { [K in keyof AdminMethods]: Unary<AdminMethods[K][0], AdminMethods[K][1]> };
export type InferenceHandlers = UntypedServiceImplementation & { [K in keyof InferenceMethods]: Unary<InferenceMethods[K][0], InferenceMethods[K][1]> };

/** A unary client method as grpc-js generates it (the full-argument form). */
export type UnaryMethod<Req, Res> = (
  request: In<Req>,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: requestCallback<Res>,
) => ClientUnaryCall;

export interface EnrollmentClient extends Client {
  Enroll: UnaryMethod<M.SignedRequest, M.EnrollResponse>;
  UpdateCapabilities: UnaryMethod<M.SignedRequest, M.Ack>;
}

export interface FleetClient extends Client {
  Heartbeat: UnaryMethod<M.SignedRequest, M.HeartbeatResponse>;
  PullTask: UnaryMethod<M.SignedRequest, M.PullTaskResponse>;
  FetchAdapter(request: In<M.SignedRequest>, metadata: Metadata, options?: Partial<CallOptions>): ClientReadableStream<M.FetchAdapterResponse>;
  PushUpdate(metadata: Metadata, options: Partial<CallOptions>, callback: requestCallback<M.PushUpdateResponse>): ClientWritableStream<In<M.PushUpdateRequest>>;
  ReportFailure: UnaryMethod<M.SignedRequest, M.Ack>;
  SubmitUnlearning: UnaryMethod<M.SignedRequest, A.UnlearningRequest>;
}

export type AdminClient = Client & { [K in keyof AdminMethods]: UnaryMethod<AdminMethods[K][0], AdminMethods[K][1]> };
export type InferenceClient = Client & { [K in keyof InferenceMethods]: UnaryMethod<InferenceMethods[K][0], InferenceMethods[K][1]> };

export interface ClientsByService {
  enrollment: EnrollmentClient;
  fleet: FleetClient;
  admin: AdminClient;
  inference: InferenceClient;
}

/** A client for one service. Close it with `client.close()`. */
export function createClient<K extends ServiceKey>(
  proto: LetheProto,
  service: K,
  address: string,
  credentials: ChannelCredentials,
  options: ChannelOptions = CLIENT_CHANNEL_OPTIONS,
): ClientsByService[K] {
  const Ctor = makeGenericClientConstructor(proto.services[service], SERVICE_NAMES[service]);
  return new Ctor(address, credentials, { ...options }) as unknown as ClientsByService[K];
}

export interface CallSettings {
  readonly metadata?: Metadata;
  /** Absolute deadline (Date or Unix ms). */
  readonly deadline?: Date | number;
}

type UnaryNames<C> = { [K in keyof C]: C[K] extends UnaryMethod<infer _Req, infer _Res> ? K : never }[keyof C];
type RequestOf<F> = F extends UnaryMethod<infer Req, infer _Res> ? Req : never;
type ResponseOf<F> = F extends UnaryMethod<infer _Req, infer Res> ? Res : never;

/** Calls a unary method; rejects with RpcError (src/wire/status.ts fromStatus) when the call fails. */
export function callUnary<C extends Client, K extends UnaryNames<C>>(
  client: C,
  method: K,
  request: In<RequestOf<C[K]>>,
  settings: CallSettings = {},
): Promise<ResponseOf<C[K]>> {
  const fn = client[method] as unknown as UnaryMethod<RequestOf<C[K]>, ResponseOf<C[K]>>;
  const options: Partial<CallOptions> = settings.deadline === undefined ? {} : { deadline: settings.deadline };
  return new Promise((resolve, reject) => {
    fn.call(client, request, settings.metadata ?? new Metadata(), options, (err: ServiceError | null, res?: ResponseOf<C[K]>) => {
      if (err) reject(isServiceError(err) ? fromStatus(err) : err);
      else resolve(res!);
    });
  });
}

/** Starts a client-streaming call; `response` settles with its result (a failed call rejects with RpcError). */
export function clientStreamCall<Req, Res>(
  start: (callback: requestCallback<Res>) => ClientWritableStream<Req>,
): { stream: ClientWritableStream<Req>; response: Promise<Res> } {
  let stream!: ClientWritableStream<Req>;
  const response = new Promise<Res>((resolve, reject) => {
    stream = start((err, res) => {
      if (err) reject(isServiceError(err) ? fromStatus(err) : err);
      else resolve(res!);
    });
  });
  return { stream, response };
}
