/**
 * EnrollmentService (enrollment.proto): a client proves it holds an operator-issued join token and the private key
 * it registers (the Enroll request is signed by that key with an empty client id); the store spends the token use
 * and adds the client in one transaction (src/auth/enrollment.ts).
 */
import type { RequestAuthenticator } from '../auth/authenticator.js';
import { enrollClient } from '../auth/enrollment.js';
import { NonceWindow } from '../auth/replay.js';
import { ProtocolError } from '../wire/errors.js';
import type { CoordinatorInfo, SignedRequest } from '../wire/messages.js';
import { methodPath } from '../wire/proto.js';
import { MAX_CHUNK_BYTES } from '../wire/codec.js';
import { unaryHandler } from '../wire/server.js';
import type { EnrollmentHandlers } from '../wire/services.js';
import { LETHE_VERSION, PROTOCOL_VERSION, type CoordinatorCore } from './core.js';
import { authenticate, guardOpen, handlerOptions, requireWellFormed } from './handlers.js';
import { capabilitiesJson } from './runs.js';

export function coordinatorInfo(core: CoordinatorCore): CoordinatorInfo {
  return {
    coordinatorId: core.coordinatorId,
    version: LETHE_VERSION,
    protocolVersion: PROTOCOL_VERSION,
    serverTimeMs: core.config.clock(),
    heartbeatIntervalMs: core.config.heartbeatIntervalMs,
    timestampWindowMs: core.config.timestampWindowMs,
    maxChunkBytes: MAX_CHUNK_BYTES,
    maxUpdateBytes: core.config.maxUpdateBytes,
  };
}

export function enrollmentHandlers(core: CoordinatorCore, authenticator: RequestAuthenticator): EnrollmentHandlers {
  const options = handlerOptions(core);
  const window = new NonceWindow({ maxSkewMs: core.config.timestampWindowMs });
  return {
    Enroll: unaryHandler(async (request: SignedRequest) => {
      guardOpen(core, 'enroll a client');
      const { auth, body } = requireWellFormed(request, 'EnrollRequest');
      if (!auth) throw new ProtocolError('Enroll needs auth signed by the key being enrolled', 'missing_header');
      const enroll = core.proto.bodies.enroll.decode(body);
      const client = await enrollClient(
        core.store,
        {
          joinToken: enroll.joinToken,
          name: enroll.name,
          publicKey: enroll.publicKey,
          capabilities: capabilitiesJson(enroll.capabilities ?? emptyCapabilities()),
          proof: { method: methodPath('enrollment', 'Enroll'), clientId: auth.clientId, timestampMs: auth.timestampMs, nonce: auth.nonce, payload: body, signature: auth.signature },
        },
        { nowMs: core.config.clock(), window },
      );
      core.presence.seen(client.id);
      core.config.log(`enrolled client ${client.id} (${JSON.stringify(client.name)})`);
      return { clientId: client.id, coordinator: coordinatorInfo(core) };
    }, options),

    UpdateCapabilities: unaryHandler(async (request: SignedRequest) => {
      guardOpen(core, 'update capabilities');
      const req = requireWellFormed(request, 'UpdateCapabilitiesRequest');
      const client = await authenticate(core, authenticator, methodPath('enrollment', 'UpdateCapabilities'), req.auth, req.body);
      await core.store.clients.updateCapabilities(client.id, capabilitiesJson(core.proto.bodies.capabilities.decode(req.body)));
      return {};
    }, options),
  };
}

function emptyCapabilities() {
  return { backend: '', memoryBudgetBytes: 0, modes: [], maxSequenceLength: 0, maxBatchSize: 0, numExamples: 0, software: '', labels: {} };
}
