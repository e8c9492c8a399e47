/**
 * One contract for both event buses (in-process and core NATS), then what only the NATS bus has: a second node on
 * the same server, foreign payloads on Lethe subjects, an unreachable server. The NATS cases need nats-server on
 * NATS_URL (default 127.0.0.1:4222); each test uses its own run ids so parallel runs do not see each other.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { connect } from 'nats';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BusStatus, EventBus, EventBusConfig } from '../../src/bus/bus.js';
import { BusClosedError, BusUnavailableError, InvalidEventError } from '../../src/bus/errors.js';
import { SUBJECTS, type LetheEvent } from '../../src/bus/events.js';
import { InProcessEventBus } from '../../src/bus/memory.js';
import { connectNatsBus } from '../../src/bus/nats.js';

const SERVERS = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** Two ends of one medium: `bus` and `peer` (a second connection for NATS, the same bus in-process). */
interface BusPair {
  readonly bus: EventBus;
  readonly peer: EventBus;
}

/** Reads `n` events (or fails after `timeoutMs`). */
async function take(events: AsyncIterator<LetheEvent>, n: number, timeoutMs = 2000): Promise<LetheEvent[]> {
  const out: LetheEvent[] = [];
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`only ${out.length} of ${n} events arrived`)), timeoutMs));
  while (out.length < n) {
    const next = await Promise.race([events.next(), timeout]);
    if (next.done === true) break;
    out.push(next.value);
  }
  return out;
}

/** Reads status reports until one satisfies `found`. */
async function waitForStatus(status: AsyncIterator<BusStatus>, found: (s: BusStatus) => boolean): Promise<BusStatus> {
  for (;;) {
    const next = await take(status as unknown as AsyncIterator<LetheEvent>, 1);
    const s = next[0] as unknown as BusStatus | undefined;
    if (s === undefined) throw new Error('status ended');
    if (found(s)) return s;
  }
}

function describeBusContract(name: string, make: (config?: Partial<EventBusConfig>) => Promise<BusPair>): void {
  describe(`${name} event bus contract`, () => {
    let pair: BusPair;
    let run: string;
    const event = (type: 'round.started' | 'update.accepted', runId: string, round = 1): LetheEvent =>
      type === 'round.started'
        ? { type, runId, round, sampledClientIds: ['c1', 'c2'], deadlineAt: 99 }
        : { type, runId, round, clientId: 'c1', numExamples: 4 };

    beforeEach(async () => {
      run = `run-${randomBytes(4).toString('hex')}`;
      pair = await make();
    });
    afterEach(async () => {
      await pair.bus.close();
      await pair.peer.close();
    });

    it('bus – a subscriber receives the matching events, in publish order, as equal copies', async () => {
      const sub = pair.peer.subscribe(SUBJECTS.run(run));
      await pair.peer.flush();
      const aggregated: LetheEvent = { type: 'round.aggregated', runId: run, round: 1, accepted: 2, adapterSha: null, metrics: { loss: 0.5 } };
      const published = [event('round.started', run), event('update.accepted', run), event('round.started', `${run}-other`), aggregated];
      for (const e of published) pair.bus.publish(e);
      await pair.bus.flush();
      const received = await take(sub, 3);
      expect(received).toEqual([published[0], published[1], aggregated]);
      expect(received[0]).not.toBe(published[0]);
    });

    it('bus – wildcard patterns select one event type of every run, or unlearning requests', async () => {
      const started = pair.peer.subscribe(SUBJECTS.ofType('round.started'));
      const unlearning = pair.peer.subscribe(SUBJECTS.unlearning());
      await pair.peer.flush();
      const request: LetheEvent = { type: 'unlearning.state', requestId: `u-${run}`, runId: run, state: 'training', failureReason: null };
      pair.bus.publish(event('update.accepted', run));
      pair.bus.publish(request);
      pair.bus.publish(event('round.started', `${run}-b`));
      await pair.bus.flush();
      expect((await take(started, 1))[0]).toMatchObject({ type: 'round.started', runId: `${run}-b` });
      expect(await take(unlearning, 1)).toEqual([request]);
    });

    it('bus – ids that are not plain subject tokens can neither collide nor inject wildcards', async () => {
      const sub = pair.peer.subscribe(SUBJECTS.run(run));
      await pair.peer.flush();
      for (const runId of [`${run}.x`, '>', '*', 'unlearning', `~${run}`]) pair.bus.publish(event('round.started', runId));
      pair.bus.publish(event('round.started', run, 7));
      await pair.bus.flush();
      expect(await take(sub, 1)).toEqual([event('round.started', run, 7)]);
    });

    it('bus – refuses a malformed event or subject pattern with InvalidEventError', () => {
      expect(() => pair.bus.publish({ type: 'round.started', runId: run } as unknown as LetheEvent)).toThrow(/round.started event: round must be number/);
      expect(() => pair.bus.publish({ type: 'nope' } as unknown as LetheEvent)).toThrow(InvalidEventError);
      expect(() => pair.bus.subscribe('lethe..x')).toThrow(InvalidEventError);
      expect(() => pair.bus.subscribe('lethe.>.x')).toThrow(/malformed at token 2/);
    });

    it('bus – unsubscribing, or leaving a for-await loop, stops delivery to that subscriber only', async () => {
      const left = pair.peer.subscribe(SUBJECTS.run(run));
      const kept = pair.peer.subscribe(SUBJECTS.run(run));
      await pair.peer.flush();
      pair.bus.publish(event('round.started', run, 1));
      await pair.bus.flush();
      for await (const e of left) {
        expect(e).toMatchObject({ round: 1 });
        break;
      }
      pair.bus.publish(event('round.started', run, 2));
      await pair.bus.flush();
      expect((await take(kept, 2)).map((e) => (e as { round: number }).round)).toEqual([1, 2]);
      expect(await left.next()).toEqual({ value: undefined, done: true });
    });

    it('bus – drain hands subscribers what was published, then ends them; later calls throw BusClosedError', async () => {
      const sub = pair.bus.subscribe(SUBJECTS.run(run));
      await pair.bus.flush();
      for (let round = 1; round <= 3; round++) pair.bus.publish(event('round.started', run, round));
      await pair.bus.drain();
      expect((await take(sub, 4)).map((e) => (e as { round: number }).round)).toEqual([1, 2, 3]);
      expect(pair.bus.isClosed).toBe(true);
      expect(await pair.bus.closed()).toBeUndefined();
      expect(() => pair.bus.publish(event('round.started', run))).toThrow(BusClosedError);
      expect(() => pair.bus.subscribe(SUBJECTS.all)).toThrow(/event bus is closed/);
      await pair.bus.drain();
    });

    it('bus – close ends subscriptions at once and is idempotent', async () => {
      const sub = pair.bus.subscribe(SUBJECTS.run(run));
      const pending = sub.next();
      await pair.bus.close();
      await pair.bus.close();
      expect(await pending).toEqual({ value: undefined, done: true });
      await expect(pair.bus.flush()).rejects.toBeInstanceOf(BusClosedError);
    });

    it('bus – a slow subscriber loses its oldest events and status() reports it', async () => {
      await pair.bus.close();
      await pair.peer.close();
      pair = await make({ maxPending: 2 });
      const status = pair.peer.status();
      const sub = pair.peer.subscribe(SUBJECTS.run(run));
      await pair.peer.flush();
      for (let round = 1; round <= 5; round++) pair.bus.publish(event('round.started', run, round));
      await pair.bus.flush();
      expect(await waitForStatus(status, (s) => s.type === 'slow_consumer' && s.dropped === 3)).toMatchObject({ pattern: SUBJECTS.run(run) });
      expect((await take(sub, 2)).map((e) => (e as { round: number }).round)).toEqual([4, 5]);
    });
  });
}

describeBusContract('in-process', async (config) => {
  const bus = new InProcessEventBus(config);
  return { bus, peer: bus };
});

describeBusContract('nats', async (config) => ({
  bus: await connectNatsBus({ servers: SERVERS, ...config }),
  peer: await connectNatsBus({ servers: SERVERS, ...config }),
}));

describe('nats event bus', () => {
  it('nats bus – a foreign payload on a Lethe subject is reported by status(), not delivered', async () => {
    const bus = await connectNatsBus({ servers: SERVERS });
    const raw = await connect({ servers: SERVERS });
    const run = `run-${randomBytes(4).toString('hex')}`;
    try {
      const status = bus.status();
      const sub = bus.subscribe(SUBJECTS.run(run));
      await bus.flush();
      raw.publish(`lethe.${run}.round.started`, new TextEncoder().encode('{"type":"round.started"}'));
      raw.publish(`lethe.${run}.round.started`, new TextEncoder().encode('not json'));
      await raw.flush();
      expect(await waitForStatus(status, (s) => s.type === 'invalid_event')).toMatchObject({ subject: `lethe.${run}.round.started` });
      await bus.close();
      expect(await sub.next()).toEqual({ value: undefined, done: true });
    } finally {
      await raw.close();
      await bus.close();
    }
  });

  it('nats bus – connecting where nothing listens fails with BusUnavailableError', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = server.address() as { port: number };
        server.close(() => resolve(p));
      });
    });
    await expect(connectNatsBus({ servers: `nats://127.0.0.1:${port}`, connectTimeoutMs: 500 })).rejects.toBeInstanceOf(BusUnavailableError);
  });
});
