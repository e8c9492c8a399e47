import { describe, expect, it } from 'vitest';
import { EventChannel } from '../../src/lifecycle/event-channel.js';

describe('event channel', () => {
  it('event channel – delivers every event in order to each subscriber, then ends after end()', async () => {
    // Arrange
    const channel = new EventChannel<number>();
    const a = channel.subscribe();
    const b = channel.subscribe();
    // Act
    channel.emit(1);
    channel.emit(2);
    channel.end();
    // Assert
    const read = async (it: AsyncIterableIterator<number>) => {
      const out: number[] = [];
      for await (const v of it) out.push(v);
      return out;
    };
    expect(await read(a)).toEqual([1, 2]);
    expect(await read(b)).toEqual([1, 2]);
  });

  it('event channel – a subscriber that stops reading loses its oldest events instead of blocking the emitter', async () => {
    const channel = new EventChannel<number>();
    const slow = channel.subscribe();
    for (let i = 0; i < 1100; i++) channel.emit(i);
    channel.end();
    const first = await slow.next();
    expect(first.value).toBe(1100 - 1024);
  });

  it('event channel – return() unsubscribes, so later events are not queued for it', async () => {
    const channel = new EventChannel<string>();
    const sub = channel.subscribe();
    await sub.return?.();
    channel.emit('late');
    expect(await sub.next()).toEqual({ value: undefined, done: true });
  });
});
