import { describe, expect, it } from 'vitest';
import seedrandom from 'seedrandom';
import { auroc, columnMeans, ledoitWolf, logisticRegression, quantile, shrinkagePrecision, spdInverse } from '../../src/unlearning/stats.js';

function gaussian(n: number, d: number, seed: string, scale: (k: number) => number = () => 1): Float32Array {
  const rng = seedrandom(seed);
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) {
    const u = 1 - rng();
    x[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng()) * scale(i % d);
  }
  return x;
}

describe('unlearning statistics', () => {
  it('auroc – is 1 for separated scores, 0.5 for ties and counts half for each tie', () => {
    expect(auroc([3, 4, 5], [0, 1, 2])).toBe(1);
    expect(auroc([0, 1], [2, 3])).toBe(0);
    expect(auroc([1, 1], [1, 1])).toBe(0.5);
    // pairs: (2>1) (2=2) (3>1) (3>2) → (3 + 0.5) / 4
    expect(auroc([2, 3], [1, 2])).toBeCloseTo(3.5 / 4, 12);
  });

  it('quantile – interpolates between order statistics', () => {
    expect(quantile([4, 1, 3, 2], 0)).toBe(1);
    expect(quantile([4, 1, 3, 2], 1)).toBe(4);
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
  });

  it('ledoitWolf – barely shrinks with many samples and shrinks hard when n < d', () => {
    const d = 8;
    const many = gaussian(4000, d, 'lw-many', (k) => 1 + k); // strongly anisotropic: little to gain from shrinking
    const few = gaussian(6, d, 'lw-few');
    const lwMany = ledoitWolf(many, 4000, d, columnMeans(many, 4000, d));
    const lwFew = ledoitWolf(few, 6, d, columnMeans(few, 6, d));
    expect(lwMany.shrinkage).toBeLessThan(0.05);
    expect(lwFew.shrinkage).toBeGreaterThan(0.3);
    expect(lwMany.cov[d * d - 1]).toBeCloseTo(64, -1); // variance of the last coordinate, (1 + 7)²
  });

  it('shrinkagePrecision – with n < d (Woodbury) equals the inverse of the Ledoit–Wolf covariance', () => {
    const rng = seedrandom('woodbury');
    const [n, d] = [7, 20];
    const x = Float32Array.from({ length: n * d }, (_, i) => rng() + (i % d) * 0.1);
    const mean = columnMeans(x, n, d);
    const { precision, shrinkage } = shrinkagePrecision(x, n, d, mean);
    const direct = ledoitWolf(x, n, d, mean);
    expect(shrinkage).toBeCloseTo(direct.shrinkage, 12);
    expect(shrinkage).toBeGreaterThan(0);
    expect(shrinkage).toBeLessThan(1); // so the Woodbury path ran
    const want = spdInverse(direct.cov, d);
    precision.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 8));
  });

  it('spdInverse – inverts a symmetric positive-definite matrix', () => {
    const a = Float64Array.from([4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 2]);
    const inv = spdInverse(a, 3);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        let s = 0;
        for (let k = 0; k < 3; k++) s += a[i * 3 + k]! * inv[k * 3 + j]!;
        expect(s).toBeCloseTo(i === j ? 1 : 0, 10);
      }
    }
  });

  it('logisticRegression – recovers the direction that separates two classes and stays finite when separable', () => {
    const inRows = Float64Array.from([2, 0, 3, 0.5, 2.5, -0.5]); // 3 rows, p = 2: feature 0 high
    const outRows = Float64Array.from([-2, 0, -3, 0.4, -2.5, -0.3]);
    const { weights, bias } = logisticRegression(inRows, outRows, 2, 1e-2);
    expect(weights[0]).toBeGreaterThan(1);
    expect(Math.abs(weights[1]!)).toBeLessThan(weights[0]! / 5);
    expect(Number.isFinite(bias)).toBe(true);
  });
});
