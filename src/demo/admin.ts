/**
 * The operator calls the demo (and `lethe predict`) makes: AdminService and InferenceService with the admin bearer
 * token (admin.proto: "authorization: Bearer <token>"). Failed calls reject with RpcError.
 */
import { credentials as grpcCredentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import type { ClientInfo, CoordinatorStatus, JoinToken, PredictResponse, RoundInfo, Run, UnlearningRequest } from '../wire/admin-messages.js';
import { loadLetheProto, type LetheProto } from '../wire/proto.js';
import { callUnary, createClient, type AdminClient, type InferenceClient } from '../wire/services.js';

const CALL_TIMEOUT_MS = 15_000;

export class AdminApi {
  private readonly admin: AdminClient;
  private readonly inference: InferenceClient;

  constructor(
    address: string,
    private readonly token: string,
    credentials: ChannelCredentials = grpcCredentials.createInsecure(),
    proto: LetheProto = loadLetheProto(),
  ) {
    this.admin = createClient(proto, 'admin', address, credentials);
    this.inference = createClient(proto, 'inference', address, credentials);
  }

  private settings(): { metadata: Metadata; deadline: number } {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${this.token}`);
    return { metadata, deadline: Date.now() + CALL_TIMEOUT_MS };
  }

  createJoinToken(uses: number, ttlSeconds: number, note = ''): Promise<JoinToken> {
    return callUnary(this.admin, 'CreateJoinToken', { uses, ttlSeconds, note }, this.settings());
  }

  /** Creates a run from a JSON run config (snake_case keys, src/coordinator/run-config.ts). */
  createRun(config: Readonly<Record<string, unknown>>): Promise<Run> {
    return callUnary(this.admin, 'CreateRun', { extraJson: JSON.stringify(config) }, this.settings());
  }

  getRun(runId: string): Promise<Run> {
    return callUnary(this.admin, 'GetRun', { runId }, this.settings());
  }

  /** Every round of the run, oldest first. */
  async rounds(runId: string): Promise<RoundInfo[]> {
    const out: RoundInfo[] = [];
    let pageToken = '';
    do {
      const page = await callUnary(this.admin, 'ListRounds', { runId, pageSize: 1000, pageToken }, this.settings());
      out.push(...page.rounds);
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    return out.sort((a, b) => a.round - b.round);
  }

  async clients(includeRevoked = false): Promise<ClientInfo[]> {
    const out: ClientInfo[] = [];
    let pageToken = '';
    do {
      const page = await callUnary(this.admin, 'ListClients', { includeRevoked, pageSize: 1000, pageToken }, this.settings());
      out.push(...page.clients);
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    return out;
  }

  revokeClient(clientId: string, reason: string): Promise<ClientInfo> {
    return callUnary(this.admin, 'RevokeClient', { clientId, reason }, this.settings());
  }

  status(): Promise<CoordinatorStatus> {
    return callUnary(this.admin, 'Status', {}, this.settings());
  }

  getUnlearning(requestId: string): Promise<UnlearningRequest> {
    return callUnary(this.admin, 'GetUnlearning', { requestId }, this.settings());
  }

  predict(runId: string, text: string, explain = false): Promise<PredictResponse> {
    return callUnary(this.inference, 'Predict', { runId, text, explain }, this.settings());
  }

  close(): void {
    this.admin.close();
    this.inference.close();
  }
}
