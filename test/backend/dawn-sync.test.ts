/**
 * The setImmediate wrapper behind synchronous WebGPU reads, without Dawn: a stand-in for an N-API task (a native,
 * unnamed, zero-arity function: a bound function with its name cleared) is captured and runs exactly once; every
 * other callback goes straight to the event loop. The full read path runs against Dawn in webgpu.test.ts.
 */
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { captureDawnTasks } from '../../src/backend/dawn-sync.js';

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

/** Looks like what Dawn's binding passes to setImmediate: native code, no name, no parameters. */
function napiLikeTask(counter: { n: number }): () => void {
  const task = function (this: unknown) {
    counter.n++;
  }.bind(null);
  Object.defineProperty(task, 'name', { value: '' });
  return task;
}

describe('dawn task capture', () => {
  it('captureDawnTasks – a native task runs once, whether pumped by hand or by the event loop', async () => {
    // Arrange
    const pending = captureDawnTasks();
    const counter = { n: 0 };
    // Act
    setImmediate(napiLikeTask(counter));
    expect(pending.size).toBe(1);
    for (const task of [...pending]) task(); // what a synchronous read does
    await tick(); // the event loop's own run of the same Immediate
    // Assert
    expect(counter.n).toBe(1);
    expect(pending.size).toBe(0);
  });

  it('captureDawnTasks – leaves JS callbacks, promise resolvers and promisified setImmediate to the event loop', async () => {
    const pending = captureDawnTasks();
    expect(captureDawnTasks()).toBe(pending); // installed once
    let ran = 0;
    setImmediate(() => ran++);
    setImmediate((x: number) => (ran += x), 10); // arguments still pass through
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(await promisify(setImmediate)('value')).toBe('value');
    expect(pending.size).toBe(0);
    expect(ran).toBe(11);
  });
});
