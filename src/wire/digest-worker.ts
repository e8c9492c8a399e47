/**
 * Running-digest verification on a worker thread (codec.ts TensorAssembler with `digests`): the receiving thread
 * copies each chunk into a shared payload buffer and moves on to the next message while the worker hashes the copy
 * and compares the chunk's running digest. SHA-256 is a fifth of what a coordinator's event loop spends taking in an
 * upload; here it overlaps the rest (receiving, copying, writing the blob) on another core.
 *
 * One worker serves every payload of the process, in order per payload (SHA-256 is sequential). It starts with the
 * first payload and ends when none has been open for IDLE_MS, so an idle coordinator, or a test that never uploads,
 * holds no thread; it never keeps the process alive.
 */
import { Worker } from 'node:worker_threads';
import { ChunkError } from './errors.js';

/** What the assembler needs of a payload's off-thread verification. */
export interface DeferredDigests {
  /** Queues a check: SHA-256 of the payload's bytes 0 .. offset + length must be `runningSha256` (chunk `index`). */
  check(index: number, offset: number, length: number, runningSha256: Uint8Array): void;
  /** The first mismatch reported so far, if any (checks are still running). */
  readonly failure: ChunkError | undefined;
  /** Resolves once every queued check has passed; rejects with ChunkError('chunk_hash_mismatch') on the first that did not. */
  verified(): Promise<void>;
  /** Stops checking (an upload given up); `verified` then never settles. */
  drop(): void;
}

/** Opens the verification of one payload held in `payload` (written by the caller before each `check`). */
export interface DigestVerifier {
  open(payload: SharedArrayBuffer): DeferredDigests;
}

/** The worker is ended after this long with no payload open. */
const IDLE_MS = 2_000;

/** The worker's code (CommonJS, evaluated: it runs the same from src/ under a test runner and from dist/). */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
parentPort.on('message', (m) => {
  if (m.type === 'touch') {
    // One write per 4 KiB page makes the kernel map it now rather than on the receiving thread's first copy into it.
    const bytes = new Uint8Array(m.payload);
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = 0;
    return void parentPort.postMessage({ id: m.id, passed: true });
  }
  if (m.type === 'open') return void open.set(m.id, { hash: createHash('sha256'), bytes: new Uint8Array(m.payload), failed: false });
  const p = open.get(m.id);
  if (p === undefined) return;
  if (m.type === 'drop') return void open.delete(m.id);
  if (m.type === 'end') {
    open.delete(m.id);
    if (!p.failed) parentPort.postMessage({ id: m.id, passed: true });
    return;
  }
  if (p.failed) return;
  p.hash.update(p.bytes.subarray(m.offset, m.offset + m.length));
  if (p.hash.copy().digest('hex') !== m.expected) {
    p.failed = true;
    parentPort.postMessage({ id: m.id, mismatch: m.index });
  }
});
`;

type Reply = { readonly id: number } & ({ readonly passed: true } | { readonly mismatch: number });

/** One open payload: how its outcome reaches the assembler. */
interface Pending {
  fail(err: Error): void;
  pass(): void;
}

export class WorkerDigestVerifier implements DigestVerifier {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idle: NodeJS.Timeout | undefined;

  open(payload: SharedArrayBuffer): DeferredDigests {
    const worker = this.started();
    const id = this.nextId++;
    let failure: ChunkError | undefined;
    let settle!: { resolve: () => void; reject: (err: Error) => void };
    const result = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    result.catch(() => undefined); // verified() hands the rejection on; until it is called, `failure` tells
    this.pending.set(id, {
      fail: (err) => {
        if (err instanceof ChunkError) failure = err;
        this.forget(id);
        settle.reject(err);
      },
      pass: () => {
        this.forget(id);
        settle.resolve();
      },
    });
    clearTimeout(this.idle);
    worker.postMessage({ type: 'open', id, payload });
    let ended = false;
    // Messages after 'end' or 'drop' (which free the worker's hold on the payload) would be ignored: there are none.
    const last = (type: 'end' | 'drop'): void => {
      if (ended) return;
      ended = true;
      worker.postMessage({ type, id });
    };
    return {
      // Hex: cheaper to post than bytes, and a view would clone the whole buffer it lies in (the received message).
      check: (index, offset, length, runningSha256) => {
        const expected = Buffer.from(runningSha256.buffer, runningSha256.byteOffset, runningSha256.byteLength).toString('hex');
        worker.postMessage({ type: 'chunk', id, index, offset, length, expected });
      },
      get failure() {
        return failure;
      },
      verified: () => {
        last('end');
        return result;
      },
      drop: () => {
        last('drop');
        if (this.pending.has(id)) this.forget(id);
      },
    };
  }

  /**
   * Maps every page of a buffer nobody else uses yet (the worker writes zeros over it), off the event loop; resolves
   * when done. For PayloadReserve: a buffer's first writes then cost no page faults on the receiving thread.
   */
  prefault(payload: SharedArrayBuffer): Promise<void> {
    const worker = this.started();
    const id = this.nextId++;
    clearTimeout(this.idle);
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        fail: (err) => {
          this.forget(id);
          reject(err);
        },
        pass: () => {
          this.forget(id);
          resolve();
        },
      });
      worker.postMessage({ type: 'touch', id, payload });
    });
  }

  private forget(id: number): void {
    this.pending.delete(id);
    if (this.pending.size > 0) return;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stop(), IDLE_MS).unref();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if ('mismatch' in reply) p?.fail(new ChunkError(`chunk ${reply.mismatch} does not match its running sha256: corrupted or reordered in transit`, 'chunk_hash_mismatch'));
      else p?.pass();
    });
    // A worker that dies fails what it was checking; the next payload starts a new one.
    const died = (err: Error): void => {
      if (this.worker !== worker) return; // ended by stop()
      this.worker = undefined;
      // Not the client's fault: a plain Error, which the status mapping turns into INTERNAL.
      const failure = new Error(`verifying the payload on a worker thread failed: ${err.message}`, { cause: err });
      for (const p of [...this.pending.values()]) p.fail(failure);
    };
    worker.on('error', died);
    worker.on('exit', (code) => died(new Error(`the worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private stop(): void {
    if (this.pending.size > 0 || !this.worker) return;
    const worker = this.worker;
    this.worker = undefined;
    void worker.terminate();
  }
}
