import { describe, expect, it } from 'vitest';
import { InvalidEventError } from '../../src/bus/errors.js';
import { checkPattern, decodeEvent, encodeEvent, idToken, subjectMatches, subjectOf, SUBJECTS, type LetheEvent } from '../../src/bus/events.js';

describe('bus events', () => {
  it('events – each event type has its documented subject', () => {
    const run = 'run-1';
    const cases: [LetheEvent, string][] = [
      [{ type: 'round.started', runId: run, round: 1, sampledClientIds: [], deadlineAt: 0 }, 'lethe.run-1.round.started'],
      [{ type: 'update.accepted', runId: run, round: 1, clientId: 'c', numExamples: 1 }, 'lethe.run-1.update.accepted'],
      [{ type: 'round.aggregated', runId: run, round: 1, accepted: 1, adapterSha: null, metrics: {} }, 'lethe.run-1.round.aggregated'],
      [{ type: 'round.failed', runId: run, round: 1, reason: 'x' }, 'lethe.run-1.round.failed'],
      [{ type: 'run.state', runId: run, state: 'completed', message: null }, 'lethe.run-1.run.state'],
      [{ type: 'unlearning.state', requestId: 'u1', runId: run, state: 'active', failureReason: null }, 'lethe.unlearning.u1.state'],
    ];
    for (const [event, subject] of cases) expect(subjectOf(event)).toBe(subject);
  });

  it('events – an id becomes one token: plain ids as they are, anything else (and reserved words) encoded', () => {
    expect(idToken('run_A-1')).toBe('run_A-1');
    for (const id of ['a.b', '*', '>', 'has space', 'unlearning', '~x', 'ünï']) {
      const token = idToken(id);
      expect(token).toMatch(/^~[A-Za-z0-9_-]+$/);
      expect(Buffer.from(token.slice(1), 'base64url').toString('utf8')).toBe(id);
    }
    expect(() => idToken('')).toThrow(InvalidEventError);
  });

  it('events – subject matching follows NATS: * is one token, a final > one or more', () => {
    expect(subjectMatches('lethe.>', 'lethe.r.round.started')).toBe(true);
    expect(subjectMatches('lethe.>', 'lethe')).toBe(false);
    expect(subjectMatches('lethe.*.round.started', 'lethe.r.round.started')).toBe(true);
    expect(subjectMatches('lethe.*.round.started', 'lethe.r.round.failed')).toBe(false);
    expect(subjectMatches('lethe.*', 'lethe.r.round')).toBe(false);
    expect(subjectMatches(SUBJECTS.run('r'), 'lethe.r.run.state')).toBe(true);
    expect(subjectMatches(SUBJECTS.run('r'), 'lethe.rr.run.state')).toBe(false);
    expect(subjectMatches(SUBJECTS.unlearning('u 1'), subjectOf({ type: 'unlearning.state', requestId: 'u 1', runId: 'r', state: 'queued', failureReason: null }))).toBe(true);
  });

  it('events – a round trip through bytes gives an equal event; foreign payloads are refused', () => {
    const event: LetheEvent = { type: 'round.aggregated', runId: 'r', round: 2, accepted: 3, adapterSha: 'ab', metrics: { loss: 0.25 } };
    expect(decodeEvent(encodeEvent(event))).toEqual(event);
    expect(() => decodeEvent(new TextEncoder().encode('{'))).toThrow(/not JSON/);
    expect(() => decodeEvent(new TextEncoder().encode('{"type":"round.aggregated","runId":"r","round":2,"accepted":3,"adapterSha":null,"metrics":{"x":"y"}}'))).toThrow(
      /metrics must be metrics/,
    );
    expect(() => checkPattern('lethe.*x')).toThrow(InvalidEventError);
  });
});
