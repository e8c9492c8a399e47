import { describe, expect, it } from 'vitest';
import type { GPT2Config } from '../../src/model/gpt2.js';
import type { HostTensor } from '../../src/tensors/host.js';
import { UNLEARNING_LORA, initUnlearningAdapter } from '../../src/unlearning/adapter.js';
import { UnlearningError } from '../../src/unlearning/errors.js';
import { maxOverlap, orthogonalize, overlapRatio } from '../../src/unlearning/orthogonality.js';
import { seededNormal } from '../../src/model/random.js';

const MODEL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 128, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });
const gaussianA = (r: number, d: number, seed: string): HostTensor => ({ shape: [r, d], data: seededNormal(r * d, 1, seed, 'A') });
const rowNorm = (a: HostTensor, i: number): number => {
  const d = a.shape[1]!;
  return Math.hypot(...a.data.subarray(i * d, (i + 1) * d));
};

describe('unlearning orthogonality', () => {
  it('overlapRatio – is 0 for orthogonal row spaces and 1 for the same rank-1 matrix', () => {
    const e0: HostTensor = { shape: [1, 4], data: Float32Array.from([1, 0, 0, 0]) };
    const e1: HostTensor = { shape: [1, 4], data: Float32Array.from([0, 2, 0, 0]) };
    expect(overlapRatio(e0, e1)).toBe(0);
    expect(overlapRatio(e0, e0)).toBeCloseTo(1, 12);
  });

  it('overlapRatio – independent Gaussian A matrices of width 128 already exceed 0.05 (orthogonality is not free)', () => {
    const ratio = overlapRatio(gaussianA(8, 128, 'a'), gaussianA(8, 128, 'b'));
    expect(ratio).toBeGreaterThan(0.05);
    expect(ratio).toBeLessThan(0.15); // ≈ 1/√128
  });

  it('orthogonalize – removes every component along earlier rows and keeps each row norm', () => {
    const earlier = [gaussianA(8, 128, 'e1'), gaussianA(8, 128, 'e2')];
    const fresh = gaussianA(8, 128, 'fresh');
    const out = orthogonalize(fresh, earlier, 'test');
    for (const e of earlier) expect(overlapRatio(out, e)).toBeLessThan(1e-6);
    for (let i = 0; i < 8; i++) expect(rowNorm(out, i)).toBeCloseTo(rowNorm(fresh, i), 4);
  });

  it('orthogonalize – refuses when earlier requests already span the input space', () => {
    const earlier = [gaussianA(4, 8, 'x'), gaussianA(4, 8, 'y')]; // 8 rows span R^8
    const attempt = (): unknown => orthogonalize(gaussianA(2, 8, 'z'), earlier, 'h.0.attn.c_attn.lora_A.weight');
    expect(attempt).toThrow(UnlearningError);
    expect(attempt).toThrow(expect.objectContaining({ code: 'no_room' }));
  });

  it('initUnlearningAdapter – request 3 starts orthogonal to requests 1 and 2 on every projection, with B = 0', () => {
    const first = initUnlearningAdapter(MODEL, UNLEARNING_LORA, []);
    const second = initUnlearningAdapter(MODEL, UNLEARNING_LORA, [first]);
    const third = initUnlearningAdapter(MODEL, UNLEARNING_LORA, [first, second]);
    expect(maxOverlap(first, []).ratio).toBe(0);
    expect(maxOverlap(third, [first, second]).ratio).toBeLessThan(1e-6);
    for (const [name, t] of third) if (name.endsWith('lora_B.weight')) expect(t.data.every((v) => v === 0)).toBe(true);
  });
});
