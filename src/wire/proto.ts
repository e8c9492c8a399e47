/**
 * Loads the lethe.v1 contract (proto/lethe/v1/*.proto) once, at an entry point, into everything the transport needs:
 * grpc service definitions (the fleet service's chunk messages serialised by hand: chunk-messages.ts), the package
 * definition (for reflection), and codecs for the signed `body` messages.
 *
 * Decoding options, used for both RPC messages and bodies so they look the same everywhere (src/wire/messages.ts):
 * camelCase field names, 64-bit integers as numbers, enums as names, bytes as Buffer, defaults filled in.
 */
import { join } from 'node:path';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { packageRoot } from '../paths.js';
import { withChunkSerializers } from './chunk-messages.js';
import { ProtocolError } from './errors.js';
import type {
  Capabilities,
  EnrollBody,
  FetchAdapterBody,
  HeartbeatBody,
  MessageInput,
  OwnUnlearningBody,
  PullTaskBody,
  ReportFailureBody,
  UpdateHeader,
} from './messages.js';

/** The files that define the services (they import the rest), relative to the proto root. */
export const PROTO_FILES: readonly string[] = Object.freeze([
  'lethe/v1/enrollment.proto',
  'lethe/v1/fleet.proto',
  'lethe/v1/admin.proto',
  'lethe/v1/inference.proto',
]);

export const PROTO_PACKAGE = 'lethe.v1';

/** Fully qualified service names, as health checks and reflection list them. */
export const SERVICE_NAMES = Object.freeze({
  enrollment: 'lethe.v1.EnrollmentService',
  fleet: 'lethe.v1.FleetService',
  admin: 'lethe.v1.AdminService',
  inference: 'lethe.v1.InferenceService',
});
export type ServiceKey = keyof typeof SERVICE_NAMES;

/** Conversion options shared by grpc (proto-loader) and the body codecs. */
export const LOADER_OPTIONS: Readonly<Options> = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  arrays: true,
  objects: true,
});

/** Serialises and parses one signed-body message type (see RequestAuth in common.proto). */
export interface BodyCodec<T> {
  /** Fully qualified message name, e.g. "lethe.v1.HeartbeatBody". */
  readonly typeName: string;
  encode(value: MessageInput<T>): Buffer;
  /** Throws ProtocolError('bad_body') when the bytes are not a valid message of this type. */
  decode(bytes: Uint8Array): T;
}

export interface BodyCodecs {
  readonly heartbeat: BodyCodec<HeartbeatBody>;
  readonly pullTask: BodyCodec<PullTaskBody>;
  readonly fetchAdapter: BodyCodec<FetchAdapterBody>;
  readonly updateHeader: BodyCodec<UpdateHeader>;
  readonly reportFailure: BodyCodec<ReportFailureBody>;
  readonly ownUnlearning: BodyCodec<OwnUnlearningBody>;
  readonly enroll: BodyCodec<EnrollBody>;
  readonly capabilities: BodyCodec<Capabilities>;
}

export interface LetheProto {
  /** Directory holding lethe/v1/*.proto. */
  readonly protoDir: string;
  /** Absolute paths of PROTO_FILES. */
  readonly protoPaths: readonly string[];
  readonly packageDefinition: PackageDefinition;
  readonly services: Readonly<Record<ServiceKey, ServiceDefinition>>;
  readonly bodies: BodyCodecs;
}

/** The directory holding package.json, found by walking up from `from` (works from src/ under vitest and from dist/). */
export function defaultProtoDir(): string {
  return join(packageRoot(), 'proto');
}

function bodyCodec<T>(root: protobuf.Root, typeName: string): BodyCodec<T> {
  const type = root.lookupType(typeName);
  const toObjectOptions = LOADER_OPTIONS as protobuf.IConversionOptions;
  return Object.freeze({
    typeName,
    encode(value: MessageInput<T>): Buffer {
      const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    decode(bytes: Uint8Array): T {
      try {
        const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        return type.toObject(type.decode(buf), toObjectOptions) as T;
      } catch (err) {
        throw new ProtocolError(`request body is not a valid ${typeName}`, 'bad_body', { cause: err });
      }
    },
  });
}

/** Loads the contract. Call once at an entry point and pass the result down. */
export function loadLetheProto(protoDir: string = defaultProtoDir()): LetheProto {
  const packageDefinition = loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [protoDir] });
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(protoDir, target);
  root.loadSync([...PROTO_FILES], { keepCase: LOADER_OPTIONS.keepCase });
  root.resolveAll();
  const service = (key: ServiceKey): ServiceDefinition => {
    const def = packageDefinition[SERVICE_NAMES[key]];
    if (!def || 'format' in def) throw new Error(`${SERVICE_NAMES[key]} missing from ${protoDir}`);
    return def as unknown as ServiceDefinition;
  };
  const body = <T>(name: string): BodyCodec<T> => bodyCodec<T>(root, `${PROTO_PACKAGE}.${name}`);
  return Object.freeze({
    protoDir,
    protoPaths: Object.freeze(PROTO_FILES.map((f) => join(protoDir, f))),
    packageDefinition,
    services: Object.freeze({
      enrollment: service('enrollment'),
      fleet: withChunkSerializers(service('fleet')),
      admin: service('admin'),
      inference: service('inference'),
    }),
    bodies: Object.freeze({
      heartbeat: body<HeartbeatBody>('HeartbeatBody'),
      pullTask: body<PullTaskBody>('PullTaskBody'),
      fetchAdapter: body<FetchAdapterBody>('FetchAdapterBody'),
      updateHeader: body<UpdateHeader>('UpdateHeader'),
      reportFailure: body<ReportFailureBody>('ReportFailureBody'),
      ownUnlearning: body<OwnUnlearningBody>('OwnUnlearningBody'),
      enroll: body<EnrollBody>('EnrollBody'),
      capabilities: body<Capabilities>('Capabilities'),
    }),
  });
}

/** The gRPC path of a method, e.g. methodPath('fleet', 'Heartbeat') = "/lethe.v1.FleetService/Heartbeat". This is the
 * `method` line of the signed string (common.proto, RequestAuth). */
export function methodPath(service: ServiceKey, method: string): string {
  return `/${SERVICE_NAMES[service]}/${method}`;
}
