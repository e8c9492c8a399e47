import { describe, expect, it } from 'vitest';
import { RdpAccountant } from '../../src/privacy/accountant.js';
import { AccountantStateError, InvalidPrivacyParameterError } from '../../src/privacy/errors.js';
import { epsilonOf } from '../../src/privacy/rdp.js';

describe('accountant – history', () => {
  it('merges repeated identical steps into one entry', () => {
    // Prepare
    const acc = new RdpAccountant();
    // Execute
    for (let i = 0; i < 5; i++) acc.step(0.01, 1.1);
    acc.step(0.02, 1.1, 3);
    acc.step(0.01, 1.1);
    // Assert
    expect(acc.history).toEqual([
      { q: 0.01, sigma: 1.1, steps: 5 },
      { q: 0.02, sigma: 1.1, steps: 3 },
      { q: 0.01, sigma: 1.1, steps: 1 },
    ]);
    expect(acc.steps).toBe(9);
  });

  it('gives ε = 0 before any release', () => {
    expect(new RdpAccountant().getEpsilon(1e-5).epsilon).toBe(0);
  });

  it('matches opacus accountants_test when stepped one release at a time (7.32911117143)', () => {
    // pytorch/opacus opacus/tests/accountants_test.py test_rdp_accountant: 2250 × step(σ=1.5, q=0.04), δ=1e-5.
    const acc = new RdpAccountant();
    for (let i = 0; i < Math.trunc(90 / 0.04); i++) acc.step(0.04, 1.5);
    expect(acc.getEpsilon(1e-5).epsilon).toBeCloseTo(7.32911117143, 7);
  });

  it('composes rounds with different q and σ by adding RDP', () => {
    // Prepare
    const acc = new RdpAccountant();
    acc.step(0.01, 1.0, 100);
    acc.step(0.05, 2.0, 40);
    const a = new RdpAccountant();
    a.step(0.01, 1.0, 100);
    const b = new RdpAccountant();
    b.step(0.05, 2.0, 40);
    // Execute
    const sum = acc.rdp();
    // Assert
    const ra = a.rdp();
    const rb = b.rdp();
    sum.forEach((v, k) => expect(v).toBeCloseTo(ra[k]! + rb[k]!, 12));
    expect(acc.getEpsilon(1e-5).epsilon).toBeGreaterThan(a.getEpsilon(1e-5).epsilon);
  });

  it('rejects invalid steps', () => {
    const acc = new RdpAccountant();
    expect(() => acc.step(1.2, 1)).toThrow(InvalidPrivacyParameterError);
    expect(() => acc.step(0.1, 1, 0)).toThrow(/positive integer/);
    expect(() => new RdpAccountant({ orders: [0.5, 2] })).toThrow(/> 1/);
  });
});

describe('accountant – state', () => {
  it('round-trips through JSON and gives the same ε', () => {
    // Prepare
    const acc = new RdpAccountant();
    acc.step(0.01, 1.0, 1000);
    acc.step(0.1, 3.0, 7);
    // Execute
    const restored = RdpAccountant.loadState(JSON.parse(JSON.stringify(acc.saveState())));
    // Assert
    expect(restored.history).toEqual(acc.history);
    expect(restored.getEpsilon(1e-6)).toEqual(acc.getEpsilon(1e-6));
  });

  it("rejects state from another mechanism", () => {
    const state = { ...new RdpAccountant().saveState(), mechanism: 'gdp' };
    expect(() => RdpAccountant.loadState(state)).toThrow(AccountantStateError);
    expect(() => RdpAccountant.loadState(state)).toThrow(/mechanism "gdp"/);
  });

  it('rejects malformed state, chaining the cause', () => {
    const state = { mechanism: 'rdp', version: 1, orders: [2, 3], history: [{ q: 2, sigma: 1, steps: 1 }] };
    let caught: unknown;
    try {
      RdpAccountant.loadState(state);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AccountantStateError);
    expect((caught as AccountantStateError).cause).toBeInstanceOf(InvalidPrivacyParameterError);
    expect(() => RdpAccountant.loadState(null)).toThrow(AccountantStateError);
    expect(() => RdpAccountant.loadState({ mechanism: 'rdp', version: 99, orders: [2], history: [] })).toThrow(/version 99/);
  });

  it('keeps custom orders through save and load', () => {
    const acc = new RdpAccountant({ orders: [2, 4, 8] });
    acc.step(0.1, 1, 10);
    const restored = RdpAccountant.loadState(acc.saveState());
    expect(restored.orders).toEqual([2, 4, 8]);
    expect(restored.getEpsilon(1e-5).epsilon).toBe(
      epsilonOf({ q: 0.1, noiseMultiplier: 1, steps: 10, delta: 1e-5, orders: [2, 4, 8] }).epsilon,
    );
  });
});
