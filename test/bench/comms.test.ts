import { describe, expect, it } from 'vitest';
import { benchComms, pushUpdateWireBytes } from '../../src/bench/comms.js';
import { hostTensor } from '../../src/tensors/host.js';
import { seedUploadWire } from '../../src/wire/bench.js';
import { loadLetheProto } from '../../src/wire/proto.js';

const proto = loadLetheProto();

describe('communication benchmark', () => {
  it('bench comms – a K = 4096 seed upload fits 16 KiB plus 512 bytes of framing, in one message', () => {
    const r = benchComms(proto);
    expect(r.seeds_k).toBe(4096);
    expect(r.seeds_bytes).toBeLessThanOrEqual(16384 + 512);
    expect(r.seeds_bytes).toBeGreaterThan(16384); // the scalars themselves are all there
    expect(r.essa_bytes).toBeLessThan(1024);
  });

  it('bench comms – on GPT-2 small with the demo\'s LoRA, the dense upload is ≥ 100× the seed upload, under FFA and with lora_A', () => {
    const r = benchComms(proto);
    expect(r.gpt2_small_geometry).toBe('GPT-2 small: 12 layers, d 768, 12 heads, vocab 50257; LoRA r 8 on attn.c_attn + attn.c_proj + mlp.c_fc + mlp.c_proj');
    // FFA: per layer lora_B of c_attn (8 × 2304), attn.c_proj (8 × 768), c_fc (8 × 3072), mlp.c_proj (8 × 768),
    // plus the 768 × 2 head, as float32.
    const ffaPayload = 4 * (12 * 8 * (2304 + 768 + 3072 + 768) + 768 * 2);
    expect(r.gpt2_small_ffa_dense_bytes).toBeGreaterThan(ffaPayload);
    expect(r.gpt2_small_ffa_dense_bytes).toBeLessThan(ffaPayload + 4096); // framing stays small
    // FedAvg-LoRA adds lora_A per layer: 768 × 8 for three modules, 3072 × 8 for mlp.c_proj.
    const fedavgPayload = ffaPayload + 4 * 12 * (3 * 768 + 3072) * 8;
    expect(r.gpt2_small_fedavg_dense_bytes).toBeGreaterThan(fedavgPayload);
    expect(r.gpt2_small_fedavg_dense_bytes).toBeLessThan(fedavgPayload + 8192); // the manifest names 97 tensors
    expect(r.gpt2_small_ffa_dense_over_seeds).toBeGreaterThanOrEqual(100);
    expect(r.gpt2_small_ffa_dense_over_seeds).toBeCloseTo(r.gpt2_small_ffa_dense_bytes / r.seeds_bytes, 9);
    expect(r.dense_lora_bytes).toBeGreaterThan(r.seeds_bytes);
  });

  it('pushUpdateWireBytes – counts every message of a chunked upload, and agrees with the wire bench for one message', () => {
    const big = pushUpdateWireBytes(proto, new Map([['x', hostTensor([1 << 19])]]), 'UPDATE_KIND_DENSE'); // 2 MiB: 2 chunks
    expect(big).toBeGreaterThan(2 << 20);
    expect(big).toBeLessThan((2 << 20) + 2048);
    // Same payload as wire/bench.ts seedUploadWire, whose ids are longer UUIDs: within a few dozen bytes.
    const ours = pushUpdateWireBytes(proto, new Map([['seed_scalars', hostTensor([4096])]]), 'UPDATE_KIND_SEED_SCALARS');
    expect(Math.abs(ours - seedUploadWire(proto).bytes)).toBeLessThan(64);
  });
});
