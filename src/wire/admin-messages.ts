/**
 * TypeScript shapes of the operator-side lethe.v1 messages (run.proto, admin.proto, inference.proto), decoded as
 * described in src/wire/messages.ts.
 */
import type { Capabilities, ForgetSelector } from './messages.js';

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
    mezoLr?: number;
    essaLr?: number;
    essaFitness?: string;
    essaEvalExamples?: number;
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
