import { describe, expect, it } from 'vitest';
import {
  applyUpdate,
  applyWeightedSum,
  equalWeights,
  exampleWeights,
  firstNonFinite,
  foldInto,
  weightedSum,
} from '../../src/aggregation/aggregate.js';
import { RoundRejectedError, UpdateRejectedError } from '../../src/aggregation/errors.js';
import { maxAbsDiff } from './fixtures.js';

function ramp(n: number, f: (i: number) => number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => f(i));
}

describe('aggregate', () => {
  it('exampleWeights – are n_k / Σn and sum to one', () => {
    expect(exampleWeights([1, 3, 0])).toEqual([0.25, 0.75, 0]);
  });

  it('exampleWeights – rejects a negative or non-finite count naming the client', () => {
    expect(() => exampleWeights([2, -1], ['a', 'b'])).toThrow(expect.objectContaining({ clientId: 'b', code: 'bad_example_count' }));
    expect(() => exampleWeights([Number.NaN], ['a'])).toThrow(UpdateRejectedError);
  });

  it('exampleWeights – rejects a round with zero examples in total', () => {
    expect(() => exampleWeights([0, 0])).toThrow(RoundRejectedError);
  });

  it('equalWeights – gives every client 1/K', () => {
    expect(equalWeights(4)).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  it.each([1, 15, 16, 17, 16384, 16384 * 2 + 5])('weightedSum – matches the scalar sum for length %i (chunk and lane tails)', (n) => {
    // Prepare
    const xs = [ramp(n, (i) => Math.sin(i)), ramp(n, (i) => i % 7), ramp(n, (i) => -0.5 * Math.cos(i))];
    const ws = [0.2, 0.3, 0.5];
    // Execute
    const out = weightedSum(xs, ws);
    // Assert
    const expected = Float64Array.from({ length: n }, (_, i) => ws.reduce((s, w, k) => s + w * xs[k]![i]!, 0));
    expect(out.length).toBe(n);
    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-5);
  });

  it('weightedSum – sums more inputs than the kernel takes per call (37 clients)', () => {
    // Prepare
    const n = 100;
    const xs = Array.from({ length: 37 }, (_, k) => ramp(n, (i) => ((i + 3 * k) % 13) - 6));
    const ws = xs.map((_, k) => (k + 1) / 703); // Σ (k+1) for k < 37 = 703
    // Execute
    const out = weightedSum(xs, ws);
    // Assert
    const expected = Float64Array.from({ length: n }, (_, i) => ws.reduce((s, w, k) => s + w * xs[k]![i]!, 0));
    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-5);
  });

  it('weightedSum – of no inputs is zero', () => {
    expect([...weightedSum([], [], Float32Array.of(5, 5))]).toEqual([0, 0]);
  });

  it('weightedSum – may write into one of its inputs', () => {
    const a = ramp(40000, (i) => i % 11);
    const b = ramp(40000, () => 2);
    const expected = a.map((x) => x + 0.5 * 2);
    weightedSum([a, b], [1, 0.5], a);
    expect(maxAbsDiff(a, expected)).toBe(0);
  });

  it('weightedSum – rejects inputs of different lengths', () => {
    expect(() => weightedSum([new Float32Array(3), new Float32Array(4)], [1, 1])).toThrow(RangeError);
  });

  it('foldInto – adds w·delta to the accumulator in place', () => {
    const acc = ramp(33, (i) => i);
    foldInto(acc, ramp(33, () => 4), 0.25);
    expect([...acc]).toEqual(Array.from({ length: 33 }, (_, i) => i + 1));
  });

  it('applyWeightedSum – adds the weighted sum of the named tensors to the global, copies the others, and gives each sum\'s squared norm', () => {
    // Prepare: lengths across several kernel chunks (8,192 floats) and not a multiple of its 16-float blocks.
    const n = 2 * 8192 + 5;
    const global = new Map([
      ['moved', { shape: [n], data: ramp(n, (i) => Math.sin(i)) }],
      ['kept', { shape: [3], data: ramp(3, () => 7) }],
    ]);
    const deltas = [0, 1, 2].map((k) => new Map([['moved', { shape: [n], data: ramp(n, (i) => Math.cos(i * (k + 1)) / 100) }]]));
    const weights = [0.5, 0.3, 0.2];
    // Execute
    const { global: out, squaredNorms } = applyWeightedSum(global, deltas, weights, ['moved']);
    // Assert
    const sum = ramp(n, (i) => weights.reduce((s, w, k) => s + w * deltas[k]!.get('moved')!.data[i]!, 0));
    const expected = ramp(n, (i) => global.get('moved')!.data[i]! + sum[i]!);
    expect(maxAbsDiff(out.get('moved')!.data, expected)).toBeLessThan(1e-6);
    expect([...out.get('kept')!.data]).toEqual([7, 7, 7]);
    expect(out.get('kept')!.data).not.toBe(global.get('kept')!.data);
    const squares = sum.reduce((s, x) => s + x * x, 0);
    expect(Math.abs(squaredNorms.get('moved')! - squares) / squares).toBeLessThan(1e-6);
    expect([...squaredNorms.keys()]).toEqual(['moved']);
  });

  it('applyWeightedSum – a NaN in an update makes that tensor\'s squared norm NaN', () => {
    const global = new Map([['x', { shape: [40], data: ramp(40, () => 1) }]]);
    // 40 floats: two 16-float blocks for the SIMD kernel, then a tail of 8 summed in JS; a NaN in each part.
    for (const at of [5, 37]) {
      const bad = ramp(40, () => 0);
      bad[at] = Number.NaN;
      const { squaredNorms } = applyWeightedSum(global, [new Map([['x', { shape: [40], data: bad }]])], [1], ['x']);
      expect(squaredNorms.get('x')).toBeNaN();
    }
  });

  it('applyUpdate – adds the update to the named tensors and copies the others', () => {
    // Prepare
    const global = new Map([
      ['moved', { shape: [3], data: ramp(3, (i) => i) }],
      ['kept', { shape: [1], data: ramp(1, () => 7) }],
    ]);
    // Execute
    const out = applyUpdate(global, new Map([['moved', { shape: [3], data: ramp(3, () => 1) }]]), 2);
    // Assert
    expect([...out.get('moved')!.data]).toEqual([2, 3, 4]);
    expect([...out.get('kept')!.data]).toEqual([7]);
    expect(out.get('kept')!.data).not.toBe(global.get('kept')!.data);
  });

  it('applyUpdate – lays its result out back to back in one buffer, in the order of the global tensors', () => {
    // Prepare
    const global = new Map([
      ['a', { shape: [3], data: ramp(3, (i) => i) }],
      ['b', { shape: [2], data: ramp(2, () => 7) }],
      ['c', { shape: [5], data: ramp(5, () => 1) }],
    ]);
    // Execute
    const out = [...applyUpdate(global, new Map([['b', { shape: [2], data: ramp(2, () => 1) }]])).values()].map((t) => t.data);
    // Assert
    expect(out.map((d) => d.buffer === out[0]!.buffer)).toEqual([true, true, true]);
    expect(out.map((d) => d.byteOffset)).toEqual([0, 12, 20]);
    expect([...new Float32Array(out[0]!.buffer)]).toEqual([0, 1, 2, 8, 8, 1, 1, 1, 1, 1]);
  });

  it('applyWeightedSum – lays its result into the buffer its allocator gives, and refuses one too small for it', () => {
    // Prepare: a buffer larger than needed (as page-aligned ones are, in whole 64 KiB pages), already holding junk.
    const global = new Map([
      ['a', { shape: [3], data: ramp(3, (i) => i) }],
      ['b', { shape: [2], data: ramp(2, () => 7) }],
    ]);
    const given = new ArrayBuffer(64);
    new Float32Array(given).fill(-1);
    const asked: number[] = [];
    // Execute
    const { global: out } = applyWeightedSum(global, [new Map([['a', { shape: [3], data: ramp(3, () => 1) }]])], [2], ['a'], (bytes) => {
      asked.push(bytes);
      return given;
    });
    // Assert
    expect(asked).toEqual([20]);
    expect([...out.values()].map((t) => t.data.buffer === given)).toEqual([true, true]);
    expect([...new Float32Array(given, 0, 5)]).toEqual([2, 3, 4, 7, 7]);
    expect(() => applyWeightedSum(global, [], [], [], () => new ArrayBuffer(16))).toThrow(/gave 16 bytes where 20 were asked for/);
  });

  it('firstNonFinite – finds NaN and infinities and nothing in finite data', () => {
    expect(firstNonFinite(Float32Array.of(1, Number.NaN))).toBe(1);
    expect(firstNonFinite(Float32Array.of(Number.NEGATIVE_INFINITY))).toBe(0);
    expect(firstNonFinite(Float32Array.of(0, -3.4e38))).toBe(-1);
  });
});
