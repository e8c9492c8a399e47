/**
 * A client asking, in its own name, that the federation forget some of its local data (FleetService.SubmitUnlearning;
 * ALGORITHMS.md §6). The request is signed with the key in the client's data directory — no admin credential — and
 * names this client only; the coordinator later hands the matching unlearning task back to this same client, whose
 * data never leaves it.
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { UnlearningRequest } from '../wire/admin-messages.js';
import type { MessageInput, OwnUnlearningBody } from '../wire/messages.js';
import { loadLetheProto, type LetheProto } from '../wire/proto.js';
import { channelCredentials } from '../wire/tls.js';
import { FleetConnection } from './connection.js';
import { loadIdentity } from './identity.js';

export interface OwnUnlearningOptions {
  /** The client's data directory (client.key and identity.json). */
  readonly dataDir: string;
  /** host:port; default: the coordinator recorded at enrollment. */
  readonly coordinator?: string;
  /** Default: the TLS files recorded at enrollment, if any, else plaintext. */
  readonly credentials?: ChannelCredentials;
  readonly proto?: LetheProto;
}

/** Submits `body` signed as the client of `opts.dataDir`. Failed calls reject with RpcError (e.g. revoked_client). */
export async function submitOwnUnlearning(body: MessageInput<OwnUnlearningBody>, opts: OwnUnlearningOptions): Promise<UnlearningRequest> {
  const identity = await loadIdentity(opts.dataDir);
  const credentials =
    opts.credentials ?? channelCredentials(identity.record.tls);
  const conn = new FleetConnection({
    proto: opts.proto ?? loadLetheProto(),
    address: opts.coordinator ?? identity.record.coordinator,
    credentials,
    clientId: identity.record.clientId,
    privateKey: identity.privateKey,
  });
  try {
    return await conn.submitUnlearning(body);
  } finally {
    conn.close();
  }
}
