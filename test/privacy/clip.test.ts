import { describe, expect, it } from 'vitest';
import seedrandom from 'seedrandom';
import { clipTensors, clipVector, localDp } from '../../src/privacy/clip.js';
import type { NoiseSource } from '../../src/privacy/gaussian.js';
import { type HostTensor, globalNorm, hostTensor } from '../../src/tensors/host.js';

function update(values: number[][]): Map<string, HostTensor> {
  return new Map(values.map((v, i) => [`t${i}`, hostTensor([v.length], Float32Array.from(v))]));
}

/** A NoiseSource that records the std it was asked for and returns that std in every coordinate. */
function constantNoise(calls: number[]): NoiseSource {
  return (n, std) => {
    calls.push(std);
    return new Float64Array(n).fill(std);
  };
}

describe('clip – joint L2 clipping', () => {
  it('scales an update above C to norm C across all tensors jointly', () => {
    // Prepare: norm 13 split over two tensors.
    const u = update([[3, 4], [12]]);
    // Execute
    const { tensors, norm, clipped } = clipTensors(u, 6.5);
    // Assert
    expect(norm).toBeCloseTo(13, 6);
    expect(clipped).toBe(true);
    expect([...tensors.get('t0')!.data]).toEqual([1.5, 2]);
    expect([...tensors.get('t1')!.data]).toEqual([6]);
  });

  it('leaves an update within C unchanged and does not modify its input', () => {
    const u = update([[0.3, 0.4]]);
    const { tensors, clipped } = clipTensors(u, 1);
    expect(clipped).toBe(false);
    expect(tensors.get('t0')!.data).not.toBe(u.get('t0')!.data);
    expect([...tensors.get('t0')!.data]).toEqual([...u.get('t0')!.data]);
  });

  it('never leaves a float32 result above C (random updates, awkward norms)', () => {
    const rng = seedrandom('clip');
    for (let trial = 0; trial < 200; trial++) {
      const values = Array.from({ length: 3 }, () => Array.from({ length: 1 + Math.floor(rng() * 50) }, () => (rng() - 0.5) * 1e3));
      const c = 0.1 + rng() * 10;
      expect(globalNorm(clipTensors(update(values), c).tensors)).toBeLessThanOrEqual(c);
    }
  });

  it('rejects non-finite updates and bad clip norms', () => {
    expect(() => clipTensors(update([[Number.NaN]]), 1)).toThrow(/non-finite/);
    expect(() => clipTensors(update([[1]]), 0)).toThrow(/clip norm/);
    expect(() => clipVector(Float32Array.of(Infinity), 1)).toThrow(/non-finite/);
  });

  it('clips a flat vector the same way', () => {
    const { vector, norm, clipped } = clipVector(Float32Array.of(6, 8), 5);
    expect(norm).toBe(10);
    expect(clipped).toBe(true);
    expect([...vector]).toEqual([3, 4]);
  });
});

describe('clip – local DP', () => {
  it('clips to C and then adds noise of std σC to every coordinate', () => {
    // Prepare
    const calls: number[] = [];
    // Execute
    const { tensors, clipped } = localDp(update([[6, 8], [0]]), 5, 0.5, constantNoise(calls));
    // Assert: clipped to [3, 4], [0], then + σC = 2.5 everywhere.
    expect(clipped).toBe(true);
    expect(calls).toEqual([2.5, 2.5]);
    expect([...tensors.get('t0')!.data]).toEqual([5.5, 6.5]);
    expect([...tensors.get('t1')!.data]).toEqual([2.5]);
  });
});
