/**
 * `lethe bench comms`: bytes one client puts on the wire for one round's upload, per mode (deterministic: no clock,
 * no network). "On the wire" is everything PushUpdate carries: every request message as protobuf (signed header with
 * realistic ids, nonce, signature and metrics, the manifest, each chunk with its running digest) plus gRPC's 5-byte
 * length prefix per message; HTTP/2 frame headers and TLS records are left out.
 *
 *   dense_lora_bytes   the demo run's dense upload (its config from demoRunConfig: the built-in tiny GPT-2, LoRA r 8
 *                      on the attention and MLP projections, FFA: the lora_B tensors and the head travel)
 *   seeds_bytes        FedKSeed's upload: K = 4096 float32 scalars in one message (target ≤ 16384 + 512)
 *   essa_bytes         ESSA's upload: (F+, F−) for the run's default 8 member pairs
 *   gpt2_small_*       issue #5's "≥ 100× on a GPT-2-small-width model", measured on GPT-2 small itself (12 layers,
 *                      d 768, 12 heads, vocab 50257; only shapes are needed, no weights) with the demo run's LoRA
 *                      (r 8 on c_attn, attn.c_proj, c_fc, mlp.c_proj): `ffa` (the demo's: lora_B and the head travel)
 *                      and `fedavg` (lora_A travels too, the upload FedKSeed compares against). Each with its ratio
 *                      to seeds_bytes; gpt2_small_geometry names the model and adapter. (Attention-only LoRA, the
 *                      run config's default, halves the FFA upload: 71×.)
 * The seed upload does not grow with the model; the dense one grows with depth, width, rank and the adapted modules.
 */
import { parseRunConfig } from '../coordinator/run-config.js';
import { runLayout } from '../coordinator/layout.js';
import { DEFAULT_DEMO, demoRunConfig } from '../demo/config.js';
import { TINY_CONFIG, type GPT2Config } from '../model/gpt2.js';
import { hostTensor, type HostTensor } from '../tensors/host.js';
import { DEFAULT_POOL_SIZE } from '../train/seed-pool.js';
import { encodeTensors } from '../wire/codec.js';
import type { UpdateKind } from '../wire/messages.js';
import type { LetheProto } from '../wire/proto.js';
import { pushUpdateMessages } from '../wire/transfer.js';

/** gRPC length prefix of every message. */
const GRPC_MESSAGE_PREFIX_BYTES = 5;

/** GPT-2 small (124M) as its Hugging Face config.json describes it. */
const GPT2_SMALL: GPT2Config = Object.freeze({ vocabSize: 50257, nPositions: 1024, nEmbd: 768, nLayer: 12, nHead: 12, layerNormEpsilon: 1e-5 });

export interface CommsBenchResult {
  readonly dense_lora_bytes: number;
  readonly seeds_bytes: number;
  readonly seeds_k: number;
  readonly essa_bytes: number;
  readonly essa_pairs: number;
  /** The model and adapter the gpt2_small_* numbers are for, in words (one line in the text output too). */
  readonly gpt2_small_geometry: string;
  readonly gpt2_small_ffa_dense_bytes: number;
  readonly gpt2_small_ffa_dense_over_seeds: number;
  readonly gpt2_small_fedavg_dense_bytes: number;
  readonly gpt2_small_fedavg_dense_over_seeds: number;
}

/**
 * Bytes on the wire of one PushUpdate carrying `tensors` as `kind`, with a header like a real client's (UUID-sized
 * ids, 16-byte nonce, 64-byte signature, three metrics). Values do not change the size (float32 is fixed-width).
 */
export function pushUpdateWireBytes(proto: LetheProto, tensors: ReadonlyMap<string, HostTensor>, kind: UpdateKind): number {
  const encoded = encodeTensors(tensors);
  const body = proto.bodies.updateHeader.encode({
    runId: 'run_0f6b3c1e8a51',
    round: 137,
    taskId: 'run_0f6b3c1e8a51/137/c_7c9e66797425',
    kind,
    numExamples: 512,
    metrics: { loss: 0.6931, steps: 64, seconds: 12.5 },
    manifest: encoded.manifest,
  });
  const auth = { clientId: 'c_7c9e66797425', timestampMs: 1_700_000_000_000, nonce: Buffer.alloc(16, 0xa5), signature: Buffer.alloc(64, 0x5a) };
  const serialize = proto.services.fleet.PushUpdate!.requestSerialize;
  let bytes = 0;
  for (const m of pushUpdateMessages(auth, body, encoded)) bytes += serialize(m).length + GRPC_MESSAGE_PREFIX_BYTES;
  return bytes;
}

/** Zero tensors of a layout (sizes are all that matter here). */
function zeros(layout: ReadonlyMap<string, readonly number[]>): Map<string, HostTensor> {
  return new Map([...layout].map(([name, shape]) => [name, hostTensor(shape)]));
}

function denseBytes(proto: LetheProto, model: GPT2Config, runJson: Record<string, unknown>): number {
  return pushUpdateWireBytes(proto, zeros(runLayout(model, parseRunConfig(runJson)).upload), 'UPDATE_KIND_DENSE');
}

export function benchComms(proto: LetheProto): CommsBenchResult {
  const demo = demoRunConfig({ ...DEFAULT_DEMO, dataDir: '' });
  const config = parseRunConfig(demo);
  const k = DEFAULT_POOL_SIZE;
  const pairs = config.local.essaPairs;
  const seeds = pushUpdateWireBytes(proto, new Map([['seed_scalars', hostTensor([k])]]), 'UPDATE_KIND_SEED_SCALARS');
  const essa = pushUpdateWireBytes(proto, new Map([['fitness', hostTensor([pairs, 2])]]), 'UPDATE_KIND_ESSA_FITNESS');
  const small = (aggregation: 'ffa' | 'fedavg') => denseBytes(proto, GPT2_SMALL, { lora: demo.lora, aggregation });
  const { lora } = config;
  const ffa = small('ffa');
  const fedavg = small('fedavg');
  return {
    dense_lora_bytes: denseBytes(proto, TINY_CONFIG, demo),
    seeds_bytes: seeds,
    seeds_k: k,
    essa_bytes: essa,
    essa_pairs: pairs,
    gpt2_small_geometry:
      `GPT-2 small: ${GPT2_SMALL.nLayer} layers, d ${GPT2_SMALL.nEmbd}, ${GPT2_SMALL.nHead} heads, vocab ${GPT2_SMALL.vocabSize}; ` +
      `LoRA r ${lora.r} on ${lora.targets.join(' + ')}`,
    gpt2_small_ffa_dense_bytes: ffa,
    gpt2_small_ffa_dense_over_seeds: ffa / seeds,
    gpt2_small_fedavg_dense_bytes: fedavg,
    gpt2_small_fedavg_dense_over_seeds: fedavg / seeds,
  };
}
