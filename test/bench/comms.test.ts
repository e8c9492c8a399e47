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

  it('bench comms – the dense LoRA upload is ≥ 100× the seed upload on full-depth GPT-2 small, and grows with depth', () => {
    const r = benchComms(proto);
    expect(r.gpt2_small_dense_over_seeds).toBeGreaterThanOrEqual(100);
    // 2 layers at the same width: the dense upload shrinks with depth, the seed upload does not.
    expect(r.gpt2_small_width_dense_bytes).toBeLessThan(r.gpt2_small_dense_bytes / 5);
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
