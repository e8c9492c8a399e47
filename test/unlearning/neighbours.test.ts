import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { sparseRows } from '../../src/unlearning/ngrams.js';
import { neighbourBank, neighbourDistances, referenceK } from '../../src/unlearning/neighbours.js';

const W = 24;

/** n unit rows [n, W] with about a third of their buckets non-zero (some rows empty when `empty`). */
function unitRows(n: number, seed: string, empty = false): Float32Array {
  const rng = seedrandom(seed);
  const x = new Float32Array(n * W);
  for (let i = 0; i < n; i++) {
    if (empty && i % 4 === 0) continue;
    let s = 0;
    for (let c = 0; c < W; c++) if (rng() < 0.35) s += (x[i * W + c] = rng()) ** 2;
    for (let c = 0; c < W; c++) x[i * W + c]! /= Math.sqrt(s) || 1;
  }
  return x;
}

/** 1 − mean of the k largest dense dot products: the definition, by brute force. */
function bruteForce(bank: Float32Array, m: number, queries: Float32Array, n: number, k: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    const sims = Array.from({ length: m }, (_, j) => {
      let s = 0;
      for (let c = 0; c < W; c++) s += queries[i * W + c]! * bank[j * W + c]!;
      return s;
    }).sort((a, b) => b - a);
    const kk = Math.min(k, m);
    return kk === 0 ? 1 : 1 - sims.slice(0, kk).reduce((a, b) => a + b, 0) / kk;
  });
}

describe('input-block neighbours', () => {
  it('neighbours – the bank search gives 1 − the mean of the k largest cosines, as a dense search does', () => {
    const bank = unitRows(50, 'bank');
    const queries = unitRows(30, 'queries', true);
    const index = neighbourBank(bank, 50, W);
    for (const k of [1, 5, 50, 80]) {
      const got = neighbourDistances(index, sparseRows(queries, 30, W), k);
      bruteForce(bank, 50, queries, 30, k).forEach((want, i) => expect(got[i]).toBeCloseTo(want, 5));
    }
  });

  it('neighbours – a bank row is at distance 0 from itself (k = 1); an empty query, or an empty bank, at distance 1', () => {
    const bank = unitRows(10, 'b');
    const self = neighbourDistances(neighbourBank(bank, 10, W), sparseRows(bank, 10, W), 1);
    self.forEach((d) => expect(d).toBeCloseTo(0, 6));
    expect(Array.from(neighbourDistances(neighbourBank(bank, 10, W), sparseRows(new Float32Array(2 * W), 2, W), 3))).toEqual([1, 1]);
    expect(Array.from(neighbourDistances(neighbourBank(new Float32Array(0), 0, W), sparseRows(bank, 10, W), 3))).toEqual(new Array(10).fill(1));
    expect(() => neighbourDistances(neighbourBank(bank, 10, W), sparseRows(new Float32Array(8), 1, 8), 3)).toThrow(/8 wide, the bank 24/);
    expect(() => neighbourBank(new Float32Array(0), 300_000, 1024)).toThrow(/300000 rows × 1024 buckets needs 1172 MiB; keep fewer rows/);
  });

  it('neighbours – the generic bank is searched with k scaled by the banks\' size ratio, never below k', () => {
    expect(referenceK(5, 199, 500)).toBe(13);
    expect(referenceK(5, 2000, 500)).toBe(5);
    expect(referenceK(5, 0, 10)).toBe(50);
  });
});
