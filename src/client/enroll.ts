/**
 * Joining a coordinator (enrollment.proto): generate an Ed25519 key pair, prove possession of it by signing the
 * EnrollBody (with an empty client id), present the operator's join token and the client's capabilities, and keep
 * the key and the returned client id in the data directory (identity.ts, mode 0600).
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import { exportPublicKeyRaw, generateEd25519KeyPair } from '../auth/keys.js';
import { newNonce, signRequest } from '../auth/signing.js';
import { RpcError } from '../wire/errors.js';
import type { Capabilities, EnrollResponse, MessageInput, TrainingMode } from '../wire/messages.js';
import { methodPath, type LetheProto } from '../wire/proto.js';
import { callUnary, createClient } from '../wire/services.js';
import { NODE_CHANNEL_OPTIONS } from './connection.js';
import { EnrollmentRefusedError, TaskError } from './errors.js';
import { requireNoIdentity, saveIdentity, type ClientIdentity } from './identity.js';
import type { TlsClientFiles } from '../wire/tls.js';

/** Software string reported in Capabilities. */
export const CLIENT_SOFTWARE = `lethe/0.1.0 node/${process.versions.node}`;

/** The local modes a client can declare, and the wire mode each stands for. */
export const MODE_NAMES: Readonly<Record<string, TrainingMode>> = Object.freeze({
  backprop: 'TRAINING_MODE_BACKPROP',
  mezo: 'TRAINING_MODE_MEZO_DENSE',
  essa: 'TRAINING_MODE_ESSA',
});

/** Parses "backprop,mezo,essa" into wire modes; TaskError('unsupported_mode') names an unknown one. */
export function parseModes(list: string): TrainingMode[] {
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new TaskError('--modes must name at least one of backprop, mezo, essa', 'unsupported_mode');
  return [...new Set(names)].map((n) => {
    const mode = MODE_NAMES[n];
    if (!mode) throw new TaskError(`unknown mode "${n}"; expected some of ${Object.keys(MODE_NAMES).join(', ')}`, 'unsupported_mode');
    return mode;
  });
}

export interface CapabilityInput {
  /** The tfjs backend actually selected (initBackend's choice). */
  readonly backend: string;
  readonly memoryMb: number;
  readonly modes: readonly TrainingMode[];
  readonly numExamples?: number;
  readonly maxSequenceLength?: number;
  readonly labels?: Readonly<Record<string, string>>;
}

/** Capabilities as sent: memory in bytes with MB = 2^20 bytes (the coordinator divides by 2^20 again). */
export function buildCapabilities(c: CapabilityInput): MessageInput<Capabilities> {
  return {
    backend: c.backend,
    memoryBudgetBytes: Math.round(c.memoryMb * (1 << 20)),
    modes: [...c.modes],
    maxSequenceLength: c.maxSequenceLength ?? 0,
    maxBatchSize: 0,
    numExamples: c.numExamples ?? 0,
    software: CLIENT_SOFTWARE,
    labels: { ...c.labels },
  };
}

export interface EnrollOptions {
  readonly proto: LetheProto;
  readonly address: string;
  readonly credentials: ChannelCredentials;
  readonly joinToken: string;
  readonly name: string;
  readonly dataDir: string;
  readonly memoryMb: number;
  readonly modes: readonly TrainingMode[];
  /** The backend this machine selected (initBackend). */
  readonly backend: string;
  /** Recorded in identity.json so `client run` connects with the same TLS files. */
  readonly tls?: TlsClientFiles;
  readonly clock?: () => number;
}

const REFUSALS: Readonly<Record<string, string>> = Object.freeze({
  unknown_join_token: 'the coordinator does not know this join token; ask the operator for a new one (lethe token create)',
  expired_join_token: 'the join token has expired; ask the operator for a new one (lethe token create)',
  exhausted_join_token: 'the join token has no uses left; ask the operator for a new one (lethe token create)',
  already_exists: 'this key is already enrolled',
  conflict: 'this key is already enrolled',
});

/** Enrolls a new key and saves the identity. Throws EnrollmentRefusedError for a refusal, RpcError otherwise. */
export async function enroll(opts: EnrollOptions): Promise<ClientIdentity & { response: EnrollResponse }> {
  await requireNoIdentity(opts.dataDir);
  const clock = opts.clock ?? Date.now;
  const keys = generateEd25519KeyPair();
  const publicKey = exportPublicKeyRaw(keys.publicKey);
  const capabilities = buildCapabilities({ backend: opts.backend, memoryMb: opts.memoryMb, modes: opts.modes });
  const body = opts.proto.bodies.enroll.encode({ joinToken: opts.joinToken, publicKey, name: opts.name, capabilities });
  const fields = { method: methodPath('enrollment', 'Enroll'), clientId: '', timestampMs: clock(), nonce: newNonce(), payload: body };
  const auth = { clientId: '', timestampMs: fields.timestampMs, nonce: fields.nonce, signature: signRequest(keys.privateKey, fields) };
  const client = createClient(opts.proto, 'enrollment', opts.address, opts.credentials, NODE_CHANNEL_OPTIONS);
  let response: EnrollResponse;
  try {
    response = await callUnary(client, 'Enroll', { auth, body }, { deadline: clock() + 15_000 });
  } catch (err) {
    const why = err instanceof RpcError ? REFUSALS[err.code] : undefined;
    if (err instanceof RpcError && why) throw new EnrollmentRefusedError(`enrollment refused: ${why} (${err.details})`, err.code, { cause: err });
    throw err;
  } finally {
    client.close();
  }
  const identity: ClientIdentity = {
    privateKey: keys.privateKey,
    record: {
      format: 1,
      clientId: response.clientId,
      name: opts.name,
      coordinator: opts.address,
      coordinatorId: response.coordinator?.coordinatorId ?? '',
      publicKey: Buffer.from(publicKey).toString('hex'),
      enrolledAtMs: clock(),
      memoryMb: opts.memoryMb,
      modes: [...opts.modes],
      ...(opts.tls ? { tls: opts.tls } : {}),
    },
  };
  await saveIdentity(opts.dataDir, identity);
  return { ...identity, response };
}
