import { describe, expect, it } from 'vitest';
import { AuthConfigError, ClockSkewError } from '../../src/auth/errors.js';
import { NonceWindow } from '../../src/auth/replay.js';

describe('nonce window', () => {
  it('nonce window – accepts timestamps up to 300 s either side of the clock and refuses beyond', () => {
    const window = new NonceWindow();
    const now = 1_700_000_000_000;
    expect(() => window.checkTimestamp(now + 300_000, now)).not.toThrow();
    expect(() => window.checkTimestamp(now - 300_000, now)).not.toThrow();
    expect(() => window.checkTimestamp(now + 300_001, now)).toThrow(ClockSkewError);
    expect(() => window.checkTimestamp(now - 300_001, now)).toThrow(/synchronise the client clock/);
  });

  it('nonce window – reports the skew it refused', () => {
    try {
      new NonceWindow().checkTimestamp(0, 600_000);
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'clock_skew', skewMs: -600_000, maxSkewMs: 300_000 });
    }
  });

  it('nonce window – nonces older than the window may be pruned, because the clock check refuses them', () => {
    const window = new NonceWindow({ maxSkewMs: 1000 });
    const now = 10_000;
    const cutoff = window.pruneCutoff(now);
    expect(cutoff).toBe(9000);
    expect(() => window.checkTimestamp(cutoff - 1, now)).toThrow(ClockSkewError);
    expect(() => window.checkTimestamp(cutoff, now)).not.toThrow();
  });

  it('nonce window – refuses a non-positive window', () => {
    expect(() => new NonceWindow({ maxSkewMs: 0 })).toThrow(AuthConfigError);
  });
});
