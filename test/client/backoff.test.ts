import { describe, expect, it } from 'vitest';
import { Backoff, backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from '../../src/client/backoff.js';

describe('client backoff', () => {
  it('backoff – the ceiling doubles from 250 ms and is capped at 5 s, however long the outage', () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 1000].map((a) => backoffCeiling(a));
    expect(ceilings).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
  });

  it('backoff – equal jitter keeps each delay within [ceiling/2, ceiling]', () => {
    for (const attempt of [0, 3, 10]) {
      const ceiling = backoffCeiling(attempt);
      expect(backoffDelay(attempt, () => 0)).toBe(ceiling);
      expect(backoffDelay(attempt, () => 0.999999)).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
      expect(backoffDelay(attempt, () => 0.5)).toBe(Math.round(ceiling * 0.75));
    }
  });

  it('backoff – consecutive failures grow the delay and a success resets it', () => {
    // Arrange
    const b = new Backoff(() => 0, DEFAULT_BACKOFF);

    // Act
    const first = [b.next(), b.next(), b.next()];
    const failures = b.failures;
    b.reset();

    // Assert
    expect(first).toEqual([250, 500, 1000]);
    expect(failures).toBe(3);
    expect(b.next()).toBe(250);
  });

  it('backoff – rejects a negative attempt number', () => {
    expect(() => backoffCeiling(-1)).toThrow(RangeError);
  });
});
