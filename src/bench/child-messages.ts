/**
 * The IPC both sides of a bench's helper processes use (aggregate-senders.ts, nats-floor-worker.ts): the child waits
 * for its parent's next message, the parent for the child's next reply.
 */
import type { ChildProcess } from 'node:child_process';

/** In the child: the parent's next message; undefined once it has disconnected. */
export function nextMessage<T>(): Promise<T | undefined> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown): void => {
      process.off('disconnect', onDisconnect);
      resolve(m as T);
    };
    const onDisconnect = (): void => {
      process.off('message', onMessage);
      resolve(undefined);
    };
    process.once('message', onMessage);
    process.once('disconnect', onDisconnect);
  });
}

/**
 * In the parent: the child's next message, taken by `accept` (undefined: not what was expected, which rejects with
 * the message, such as the child's `{ error }`); rejects too if the child exits first. `who` names the child in errors.
 */
export function nextReply<T>(child: ChildProcess, who: string, accept: (m: unknown) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown): void => {
      cleanUp();
      const taken = accept(m);
      if (taken !== undefined) resolve(taken);
      else reject(new Error(`${who}: ${JSON.stringify(m)}`));
    };
    const onExit = (code: number | null): void => {
      cleanUp();
      reject(new Error(`${who} exited (code ${code}) before replying`));
    };
    const cleanUp = (): void => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** In the parent: resolves when the child's next message is `expected`. */
export async function replyOf(child: ChildProcess, who: string, expected: string): Promise<void> {
  await nextReply(child, who, (m) => (m === expected ? true : undefined));
}
