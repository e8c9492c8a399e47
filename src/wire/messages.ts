/**
 * TypeScript shapes of the lethe.v1 messages as src/wire/proto.ts decodes them (proto/lethe/v1/*.proto documents
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

// ---- run.proto ----------------------------------------------------------------------------------------------------

/** Typed run configuration; unset (absent) fields take the JSON run config's defaults. */
export interface RunSpec {
  name?: string;
  baseModel?: string;
  task?: string;
  labels: string[];
  seqLen?: number;
  lora: { r?: number; alpha?: number; targets: string[]; seed?: string } | null;
  aggregation?: string;
  serverOptimizer: { kind?: string; lr?: number } | null;
  rounds?: number;
  sampleRate?: number;
  clientsPerRound?: number;
  /** Which of the sampling oneof's fields is set. */
  sampling?: 'sampleRate' | 'clientsPerRound';
  minClients?: number;
  roundDeadlineS?: number;
  local: {
    mode?: string;
    steps?: number;
    batchSize?: number;
    lr?: number;
    mezoEps?: number;
    mezoUpload?: string;
    seedPoolK?: number;
    essaPairs?: number;
    essaSigma?: number;
  } | null;
  modes: { default?: string; lowMemory?: string; lowMemoryBelowMb?: number } | null;
  privacy: {
    mode?: string;
    epsilon?: number;
    delta?: number;
    clip?: number;
    noiseMultiplier?: number;
    adaptive?: boolean;
  } | null;
  evalData?: string;
  seed?: string;
}

export type RunState =
  | 'RUN_STATE_UNSPECIFIED'
  | 'RUN_STATE_PENDING'
  | 'RUN_STATE_RUNNING'
  | 'RUN_STATE_COMPLETED'
  | 'RUN_STATE_BUDGET_EXHAUSTED'
  | 'RUN_STATE_FAILED'
  | 'RUN_STATE_STOPPED';

export interface PrivacySpent {
  epsilonSpent: number;
  epsilonBudget: number;
  delta: number;
}

export interface Run {
  runId: string;
  name: string;
  state: RunState;
  currentRound: number;
  rounds: number;
  createdAtMs: number;
  configJson: string;
  adapterSha256: Buffer;
  privacy: PrivacySpent | null;
  message: string;
}

export type RoundState = 'ROUND_STATE_UNSPECIFIED' | 'ROUND_STATE_OPEN' | 'ROUND_STATE_AGGREGATING' | 'ROUND_STATE_COMPLETED' | 'ROUND_STATE_FAILED';

export interface RoundInfo {
  runId: string;
  round: number;
  state: RoundState;
  sampled: number;
  accepted: number;
  failed: number;
  startedAtMs: number;
  finishedAtMs: number;
  adapterSha256: Buffer;
  metrics: Record<string, number>;
  epsilonAfter: number;
}

// ---- admin.proto --------------------------------------------------------------------------------------------------

export interface CreateJoinTokenRequest {
  ttlSeconds: number;
  uses: number;
  note: string;
}

export interface JoinToken {
  token: string;
  expiresAtMs: number;
  usesLeft: number;
  note: string;
}

export interface ListClientsRequest {
  includeRevoked: boolean;
  pageSize: number;
  pageToken: string;
}

export interface ClientInfo {
  clientId: string;
  name: string;
  publicKey: Buffer;
  capabilities: Capabilities | null;
  enrolledAtMs: number;
  lastSeenMs: number;
  online: boolean;
  revoked: boolean;
  revokeReason: string;
}

export interface ListClientsResponse {
  clients: ClientInfo[];
  nextPageToken: string;
}

export interface RevokeClientRequest {
  clientId: string;
  reason: string;
}

export interface CreateRunRequest {
  spec: RunSpec | null;
  extraJson: string;
}

export interface PageRequest {
  pageSize: number;
  pageToken: string;
}

export interface ListRunsResponse {
  runs: Run[];
  nextPageToken: string;
}

export interface GetRunRequest {
  runId: string;
}

export interface ListRoundsRequest extends PageRequest {
  runId: string;
}

export interface ListRoundsResponse {
  rounds: RoundInfo[];
  nextPageToken: string;
}

export interface CoordinatorStatus {
  coordinatorId: string;
  version: string;
  startedAtMs: number;
  serverTimeMs: number;
  clientsEnrolled: number;
  clientsOnline: number;
  clientsRevoked: number;
  runsActive: number;
  runsTotal: number;
  unlearningPending: number;
}

export interface RaiseBudgetRequest {
  runId: string;
  epsilonBudget: number;
  reason: string;
}

export type UnlearningState =
  | 'UNLEARNING_STATE_UNSPECIFIED'
  | 'UNLEARNING_STATE_PENDING'
  | 'UNLEARNING_STATE_RUNNING'
  | 'UNLEARNING_STATE_COMPLETED'
  | 'UNLEARNING_STATE_FAILED';

export interface SubmitUnlearningRequest {
  runId: string;
  forget: ForgetSelector | null;
  clientIds: string[];
  targetPolicy: string;
  reason: string;
}

export interface UnlearningRequest {
  requestId: string;
  runId: string;
  index: number;
  state: UnlearningState;
  forget: ForgetSelector | null;
  clientIds: string[];
  targetPolicy: string;
  reason: string;
  createdAtMs: number;
  completedAtMs: number;
  adapterSha256: Buffer;
  metrics: Record<string, number>;
  message: string;
}

export interface GetUnlearningRequest {
  requestId: string;
}

export interface ListUnlearningRequest extends PageRequest {
  runId: string;
}

export interface ListUnlearningResponse {
  requests: UnlearningRequest[];
  nextPageToken: string;
}

// ---- inference.proto ----------------------------------------------------------------------------------------------

export interface PredictRequest {
  runId: string;
  adapterSha256: Buffer;
  text?: string;
  tokenIds?: { ids: number[] };
  /** Which of the input oneof's fields is set. */
  input?: 'text' | 'tokenIds';
  explain: boolean;
}

export interface LabelProbability {
  label: string;
  index: number;
  probability: number;
}

export interface GateWeight {
  requestId: string;
  weight: number;
  score: number;
}

export interface PredictResponse {
  probabilities: LabelProbability[];
  predictedIndex: number;
  predictedLabel: string;
  adapterSha256: Buffer;
  numTokens: number;
  truncated: boolean;
  gates: GateWeight[];
}
