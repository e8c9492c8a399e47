import { describe, expect, it } from 'vitest';
import { TaskError } from '../../src/client/errors.js';
import { denseDelta, fitnessTensor, privatizeUpdate } from '../../src/client/update.js';
import { globalNorm, type HostTensor } from '../../src/tensors/host.js';
import type { PrivacyInstructions } from '../../src/wire/messages.js';

function t(shape: number[], values: number[]): HostTensor {
  return { shape, data: Float32Array.from(values) };
}

const global = new Map([
  ['h.0.attn.c_attn.lora_A.weight', t([1, 2], [1, 1])],
  ['h.0.attn.c_attn.lora_B.weight', t([2, 1], [0, 0])],
  ['score.weight', t([2, 2], [0.1, 0.2, 0.3, 0.4])],
]);
const trained = new Map([
  ['h.0.attn.c_attn.lora_A.weight', t([1, 2], [1, 1])],
  ['h.0.attn.c_attn.lora_B.weight', t([2, 1], [3, 4])],
  ['score.weight', t([2, 2], [0.1, 0.2, 0.3, 0.4])],
]);
const noPrivacy: PrivacyInstructions = { clipNorm: 0, localNoiseMultiplier: 0, reportClipIndicator: false, sampleDp: null };

describe('client update', () => {
  it('update – the delta holds exactly the upload tensors, in the task order, as trained − global', () => {
    // Act
    const delta = denseDelta(trained, global, ['score.weight', 'h.0.attn.c_attn.lora_B.weight']);

    // Assert
    expect([...delta.keys()]).toEqual(['score.weight', 'h.0.attn.c_attn.lora_B.weight']);
    expect(delta.get('score.weight')!.shape).toEqual([2, 2]);
    expect([...delta.get('score.weight')!.data]).toEqual([0, 0, 0, 0]);
    expect([...delta.get('h.0.attn.c_attn.lora_B.weight')!.data]).toEqual([3, 4]);
  });

  it('update – an upload tensor the adapter lacks is a TaskError', () => {
    expect(() => denseDelta(trained, global, ['h.9.mlp.c_fc.lora_B.weight'])).toThrow(TaskError);
  });

  it('update – without privacy instructions the update leaves as it is', () => {
    const delta = denseDelta(trained, global, ['h.0.attn.c_attn.lora_B.weight']);
    const u = privatizeUpdate(delta, noPrivacy, () => {
      throw new Error('no noise expected');
    });
    expect([...u.tensors.get('h.0.attn.c_attn.lora_B.weight')!.data]).toEqual([3, 4]);
    expect(u.norm).toBeCloseTo(5, 6);
    expect(u.clipped).toBe(false);
  });

  it('update – clipping scales the whole update to norm C and reports the clip indicator', () => {
    // Arrange: ‖u‖ = 5
    const delta = denseDelta(trained, global, ['h.0.attn.c_attn.lora_B.weight', 'score.weight']);

    // Act
    const over = privatizeUpdate(delta, { ...noPrivacy, clipNorm: 1, reportClipIndicator: true }, () => new Float64Array(0));
    const under = privatizeUpdate(delta, { ...noPrivacy, clipNorm: 10, reportClipIndicator: true }, () => new Float64Array(0));

    // Assert
    expect(globalNorm(over.tensors)).toBeLessThanOrEqual(1);
    expect(globalNorm(over.tensors)).toBeCloseTo(1, 5);
    expect([...over.tensors.get('h.0.attn.c_attn.lora_B.weight')!.data].map((v) => +v.toFixed(5))).toEqual([0.6, 0.8]);
    expect(over).toMatchObject({ clipped: true, withinClipNorm: false });
    expect(under).toMatchObject({ clipped: false, withinClipNorm: true });
    expect(globalNorm(under.tensors)).toBeCloseTo(5, 5);
  });

  it('update – local DP adds N(0, σ²C²) per coordinate after clipping', () => {
    // Arrange
    const delta = denseDelta(trained, global, ['h.0.attn.c_attn.lora_B.weight']);
    const calls: [number, number][] = [];
    const noise = (n: number, std: number): Float64Array => {
      calls.push([n, std]);
      return new Float64Array(n).fill(0.5);
    };

    // Act
    const u = privatizeUpdate(delta, { ...noPrivacy, clipNorm: 1, localNoiseMultiplier: 2 }, noise);

    // Assert
    expect(calls).toEqual([[2, 2]]);
    expect([...u.tensors.get('h.0.attn.c_attn.lora_B.weight')!.data].map((v) => +v.toFixed(5))).toEqual([1.1, 1.3]);
  });

  it('update – local noise without a clip norm is refused (no sensitivity bound)', () => {
    const delta = denseDelta(trained, global, ['h.0.attn.c_attn.lora_B.weight']);
    expect(() => privatizeUpdate(delta, { ...noPrivacy, localNoiseMultiplier: 1 }, () => new Float64Array(2))).toThrow(/clip norm/);
  });

  it('update – ESSA fitness rows are (F+, F−) per member seed, shape [P, 2]', () => {
    const f = fitnessTensor([
      { fPlus: 0.5, fMinus: 0.25 },
      { fPlus: 1, fMinus: 0 },
    ]).get('fitness')!;
    expect(f.shape).toEqual([2, 2]);
    expect([...f.data]).toEqual([0.5, 0.25, 1, 0]);
  });
});
