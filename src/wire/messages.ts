/**
 * TypeScript shapes of the client-side lethe.v1 messages (common, tensor, task, fleet, enrollment; the operator side
 * is in admin-messages.ts) as src/wire/proto.ts decodes them (proto/lethe/v1/*.proto documents
 * every field): camelCase names, 64-bit integers as numbers (every such field is a byte count or a Unix time in ms,
 * far below 2^53), enums as their names, bytes as Buffer, absent sub-messages as null, repeated fields as arrays and
 * maps as plain objects. Fields declared `optional` in proto stay absent when unset.
 *
 * To build a message, use `MessageInput<T>`: every field may be omitted (proto3 default) and bytes may be any
 * Uint8Array.
 */

/** What callers may pass where a message of type T is sent. */
export type MessageInput<T> = T extends Buffer
  ? Uint8Array
  : T extends readonly (infer U)[]
    ? readonly MessageInput<U>[]
    : T extends object
      ? { readonly [K in keyof T]?: MessageInput<Exclude<T[K], null>> | null }
      : T;

// ---- common.proto -------------------------------------------------------------------------------------------------

export interface RequestAuth {
  clientId: string;
  timestampMs: number;
  nonce: Buffer;
  signature: Buffer;
}

export type TrainingMode =
  | 'TRAINING_MODE_UNSPECIFIED'
  | 'TRAINING_MODE_BACKPROP'
  | 'TRAINING_MODE_MEZO_DENSE'
  | 'TRAINING_MODE_MEZO_SEEDS'
  | 'TRAINING_MODE_ESSA'
  | 'TRAINING_MODE_UNLEARN';

export interface Capabilities {
  backend: string;
  memoryBudgetBytes: number;
  modes: TrainingMode[];
  maxSequenceLength: number;
  maxBatchSize: number;
  numExamples: number;
  software: string;
  labels: Record<string, string>;
}

export type AggregationMode = 'AGGREGATION_MODE_UNSPECIFIED' | 'AGGREGATION_MODE_FFA' | 'AGGREGATION_MODE_EXACT' | 'AGGREGATION_MODE_FEDAVG';

export interface LoraConfig {
  rank: number;
  alpha: number;
  targetModules: string[];
  initSeed: string;
  aggregation: AggregationMode;
}

export type Ack = Record<string, never>;

/** Every signed request message: `body` holds the serialized body message named by the method. */
export interface SignedRequest {
  auth: RequestAuth | null;
  body: Buffer;
}

// ---- tensor.proto -------------------------------------------------------------------------------------------------

export interface TensorEntry {
  name: string;
  shape: number[];
  dtype: string;
  byteOffset: number;
  byteLength: number;
}

export interface TensorManifest {
  entries: TensorEntry[];
  totalBytes: number;
  sha256: Buffer;
}

export interface TensorChunk {
  index: number;
  data: Buffer;
  runningSha256: Buffer;
}

// ---- task.proto ---------------------------------------------------------------------------------------------------

export interface TrainingParams {
  steps: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  seed: number;
}

export interface MezoParams {
  eps: number;
  seedPoolSize: number;
  poolSeed: string;
  poolScalarsSha256: Buffer;
}

export interface EssaParams {
  sigma: number;
  memberSeeds: number[];
  topFraction: number;
  fitness: string;
  evalExamples: number;
  basisSha256: Buffer;
}

export interface SampleDpParams {
  clipNorm: number;
  noiseMultiplier: number;
  samplingRate: number;
  expectedBatchSize: number;
}

export interface PrivacyInstructions {
  clipNorm: number;
  localNoiseMultiplier: number;
  reportClipIndicator: boolean;
  sampleDp: SampleDpParams | null;
}

export interface ForgetSelector {
  exampleIds: string[];
  label: string;
  query: string;
  group: string;
  match: string;
}

/** fleet.proto OwnUnlearningBody: what a client asks to forget of its own data (FleetService.SubmitUnlearning). */
export interface OwnUnlearningBody {
  runId: string;
  forget: ForgetSelector | null;
  targetPolicy: string;
  reason: string;
}

export interface UnlearningTask {
  requestId: string;
  index: number;
  previousAdapterSha256: Buffer;
  priorAdaptersSha256: Buffer[];
  orthogonalityLambda: number;
  forget: ForgetSelector | null;
  targetPolicy: string;
  detectorLayers: number[];
}

export interface Task {
  taskId: string;
  runId: string;
  round: number;
  deadlineMs: number;
  mode: TrainingMode;
  adapterSha256: Buffer;
  baseModel: string;
  dataset: string;
  labels: string[];
  seqLen: number;
  lora: LoraConfig | null;
  training: TrainingParams | null;
  mezo: MezoParams | null;
  essa: EssaParams | null;
  privacy: PrivacyInstructions | null;
  unlearning: UnlearningTask | null;
  uploadTensors: string[];
}

// ---- fleet.proto --------------------------------------------------------------------------------------------------

export type ClientState =
  | 'CLIENT_STATE_UNSPECIFIED'
  | 'CLIENT_STATE_IDLE'
  | 'CLIENT_STATE_FETCHING'
  | 'CLIENT_STATE_TRAINING'
  | 'CLIENT_STATE_UPLOADING';

export interface HeartbeatBody {
  state: ClientState;
  taskId: string;
  progress: number;
  freeMemoryBytes: number;
}

export interface HeartbeatResponse {
  taskWaiting: boolean;
  serverTimeMs: number;
  heartbeatIntervalMs: number;
  cancelTask: boolean;
}

export interface PullTaskBody {
  waitMs: number;
}

export interface PullTaskResponse {
  task: Task | null;
  retryAfterMs: number;
}

export interface FetchAdapterBody {
  runId: string;
  sha256: Buffer;
  omitFrozen: boolean;
}

export interface FetchAdapterResponse {
  manifest: TensorManifest | null;
  chunk: TensorChunk | null;
}

export type UpdateKind =
  | 'UPDATE_KIND_UNSPECIFIED'
  | 'UPDATE_KIND_DENSE'
  | 'UPDATE_KIND_SEED_SCALARS'
  | 'UPDATE_KIND_ESSA_FITNESS'
  | 'UPDATE_KIND_UNLEARNING';

export interface PushUpdateRequest extends SignedRequest {
  chunk: TensorChunk | null;
}

export interface UpdateHeader {
  runId: string;
  round: number;
  taskId: string;
  kind: UpdateKind;
  numExamples: number;
  metrics: Record<string, number>;
  manifest: TensorManifest | null;
  withinClipNorm: boolean;
  unlearningMetadata: string;
}

export type PushUpdateResult = 'RESULT_UNSPECIFIED' | 'RESULT_ACCEPTED' | 'RESULT_DUPLICATE';

export interface PushUpdateResponse {
  result: PushUpdateResult;
  sha256: Buffer;
  storedBytes: number;
}

export type FailureReason =
  | 'FAILURE_REASON_UNSPECIFIED'
  | 'FAILURE_REASON_OUT_OF_MEMORY'
  | 'FAILURE_REASON_DEADLINE'
  | 'FAILURE_REASON_NON_FINITE'
  | 'FAILURE_REASON_DATA'
  | 'FAILURE_REASON_CANCELLED'
  | 'FAILURE_REASON_INTERNAL';

export interface ReportFailureBody {
  runId: string;
  round: number;
  taskId: string;
  reason: FailureReason;
  message: string;
}

// ---- enrollment.proto ---------------------------------------------------------------------------------------------

export interface EnrollBody {
  joinToken: string;
  publicKey: Buffer;
  name: string;
  capabilities: Capabilities | null;
}

export interface CoordinatorInfo {
  coordinatorId: string;
  version: string;
  protocolVersion: number;
  serverTimeMs: number;
  heartbeatIntervalMs: number;
  timestampWindowMs: number;
  maxChunkBytes: number;
  maxUpdateBytes: number;
}

export interface EnrollResponse {
  clientId: string;
  coordinator: CoordinatorInfo | null;
}
