import { describe, expect, it } from 'vitest';
import { allFinite } from '../../src/wire/finite-kernel.js';

describe('finite kernel', () => {
  it('finite kernel – finds NaN and ±Infinity anywhere: in the vector loop, in the tail, past the 1 MiB scratch, at odd offsets', () => {
    // Prepare: 1 MiB + 7 floats, so the data spans two scratch loads and ends in a tail the vector loop skips.
    const n = (1 << 18) + 7;
    const floats = new Float32Array(n).map((_, i) => Math.sin(i));
    const bits = new Uint32Array(floats.buffer);
    const nonFinite = [0x7fc00000, 0xffc00000, 0x7f800001, 0x7f800000, 0xff800000]; // NaN, −NaN, signalling NaN, ±Inf
    const positions = [0, 3, 15, 16, 4095, (1 << 18) - 1, 1 << 18, n - 1];
    // Execute + Assert
    expect(allFinite(new Uint8Array(floats.buffer))).toBe(true);
    for (const pattern of nonFinite) {
      for (const at of positions) {
        const old = bits[at]!;
        bits[at] = pattern;
        expect(allFinite(new Uint8Array(floats.buffer)), `0x${pattern.toString(16)} at ${at}`).toBe(false);
        const odd = new Uint8Array(floats.byteLength + 1);
        odd.set(new Uint8Array(floats.buffer), 1);
        expect(allFinite(odd.subarray(1)), `0x${pattern.toString(16)} at ${at}, odd offset`).toBe(false);
        bits[at] = old;
      }
    }
  });

  it('finite kernel – extreme finite values pass: ±largest, smallest subnormal, −0', () => {
    const extremes = new Float32Array(4096);
    extremes.set([3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45, -0]);
    expect(allFinite(new Uint8Array(extremes.buffer))).toBe(true);
    expect(allFinite(new Uint8Array(0))).toBe(true);
  });
});
