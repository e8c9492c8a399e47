/**
 * Payload buffers set aside for the uploads of tasks just handed out (src/coordinator/payload-reserve.ts), and the
 * memory for a round's new adapter (round-close.ts prepareOutput), faulted in by the digest worker's thread (a real
 * worker, src/wire/digest-worker.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CoordinatorCore } from '../../src/coordinator/core.js';
import { PayloadReserve } from '../../src/coordinator/payload-reserve.js';
import { allocatorWith, prepareOutput } from '../../src/coordinator/round-close.js';
import type { RunContext } from '../../src/coordinator/runs.js';
import { isPageAligned, sharedPageAlignedBuffer } from '../../src/tensors/page-aligned.js';
import { encodeTensors, TensorAssembler } from '../../src/wire/codec.js';
import { WorkerDigestVerifier } from '../../src/wire/digest-worker.js';

const MIB = 1 << 20;

describe('payload reserve', () => {
  const verifier = new WorkerDigestVerifier();
  let now = 1_000_000;
  const clock = (): number => now;
  const reserveOf = (limitBytes: number): PayloadReserve => new PayloadReserve(limitBytes, (b) => verifier.prefault(b), clock);
  afterEach(() => {
    now = 1_000_000;
  });

  it('payload reserve – hands out the page-aligned buffer set aside for a task once it is faulted in, and only once', async () => {
    const reserve = reserveOf(64 * MIB);
    await reserve.reserve('task-a', 8 * MIB + 3, now + 60_000);
    expect(reserve.heldBytes).toBe(8 * MIB + 3);
    const buffer = reserve.take('task-a', 8 * MIB + 3);
    expect(buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(isPageAligned(buffer!)).toBe(true); // so the upload's blob file is written from it directly
    expect(buffer!.byteLength).toBeGreaterThanOrEqual(8 * MIB + 3);
    expect(reserve.take('task-a', 8 * MIB + 3)).toBeUndefined();
    expect(reserve.heldBytes).toBe(0);
  });

  it('payload reserve – gives nothing for another size, a passed deadline or a buffer still being faulted in, and drops it', async () => {
    const reserve = reserveOf(64 * MIB);
    await reserve.reserve('sized', 4 * MIB, now + 60_000);
    expect(reserve.take('sized', 4 * MIB + 4)).toBeUndefined();
    expect(reserve.take('sized', 4 * MIB)).toBeUndefined(); // dropped by the mismatched take

    await reserve.reserve('late', 4 * MIB, now + 1_000);
    now += 2_000;
    expect(reserve.take('late', 4 * MIB)).toBeUndefined();

    const pending = reserve.reserve('busy', 4 * MIB, now + 60_000);
    expect(reserve.take('busy', 4 * MIB)).toBeUndefined(); // the worker has not finished touching it
    await pending;
    expect(reserve.heldBytes).toBe(0);
  });

  it('payload reserve – a prefault that throws (no worker thread) sets nothing aside and never rejects', async () => {
    const reserve = new PayloadReserve(64 * MIB, () => {
      throw new Error('no worker thread');
    }, clock);
    await expect(reserve.reserve('t', 4 * MIB, now + 60_000)).resolves.toBeUndefined();
    expect(reserve.heldBytes).toBe(0);
    expect(reserve.take('t', 4 * MIB)).toBeUndefined();
  });

  it('payload reserve – stays within its limit by dropping the oldest, and sets aside nothing larger than the limit', async () => {
    const reserve = reserveOf(10 * MIB);
    await reserve.reserve('first', 4 * MIB, now + 60_000);
    await reserve.reserve('second', 4 * MIB, now + 60_000);
    await reserve.reserve('third', 4 * MIB, now + 60_000);
    expect(reserve.heldBytes).toBe(8 * MIB);
    expect(reserve.take('first', 4 * MIB)).toBeUndefined();
    expect(reserve.take('third', 4 * MIB)).toBeDefined();
    await reserve.reserve('huge', 11 * MIB, now + 60_000);
    expect(reserve.take('huge', 11 * MIB)).toBeUndefined();
  });

  it('payload reserve – writing a faulted-in buffer takes far fewer page faults on this thread than a fresh one', async () => {
    const reserve = reserveOf(64 * MIB);
    const bytes = 32 * MIB;
    const fill = (buffer: SharedArrayBuffer): number => {
      const before = process.resourceUsage().minorPageFault;
      new Uint8Array(buffer).fill(1);
      return process.resourceUsage().minorPageFault - before;
    };
    const fresh = fill(new SharedArrayBuffer(bytes));
    await reserve.reserve('t', bytes, now + 60_000);
    const prefaulted = fill(reserve.take('t', bytes)!);
    // 8,192 faults with 4 KiB pages; with huge pages there are few either way.
    if (fresh > 4000) expect(prefaulted).toBeLessThan(fresh / 8);
    else expect(prefaulted).toBeLessThanOrEqual(fresh);
  });

  it('assembler – fills a reserved buffer, which must hold at least the payload, and its payload is exactly the payload\'s bytes', async () => {
    const data = Float32Array.from({ length: 5 << 18 }, (_, i) => Math.cos(i));
    const encoded = encodeTensors(new Map([['w', { shape: [data.length], data }]]));
    const reserved = new SharedArrayBuffer(encoded.manifest.totalBytes + 4096); // as a page-aligned one is rounded up
    const assembler = new TensorAssembler(encoded.manifest, {}, verifier, reserved);
    for (const c of encoded.chunks) assembler.push(c);
    const tensors = assembler.finish();
    await assembler.verified();
    expect(assembler.payload.buffer).toBe(reserved);
    expect(assembler.payload.byteLength).toBe(encoded.manifest.totalBytes);
    const w = tensors.get('w')!.data;
    expect(Buffer.from(w.buffer, w.byteOffset, w.byteLength).equals(Buffer.from(data.buffer))).toBe(true);
    expect(() => new TensorAssembler(encoded.manifest, {}, verifier, new SharedArrayBuffer(16))).toThrow(RangeError);
    expect(() => new TensorAssembler(encoded.manifest, {}, undefined, reserved)).toThrow(RangeError);
  });
});

describe('round output', () => {
  const digests = new WorkerDigestVerifier();
  const coreWith = (payloadReserveBytes: number): CoordinatorCore => ({ config: { payloadReserveBytes }, digests }) as unknown as CoordinatorCore;
  const runWith = (floats: number): RunContext => ({ layout: { adapter: new Map([['a', [floats / 2]], ['b', [floats / 2]]]) } }) as unknown as RunContext;

  it('prepareOutput – sets aside a zeroed, page-aligned buffer for the whole adapter, faulted in off this thread', async () => {
    const bytes = 4 * (6 * MIB);
    const buffer = await prepareOutput(coreWith(256 * MIB), runWith(6 * MIB));
    expect(buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(isPageAligned(buffer!)).toBe(true);
    expect(buffer!.byteLength).toBeGreaterThanOrEqual(bytes);
    expect(new Uint8Array(buffer!).every((b) => b === 0)).toBe(true);
    const fill = (b: SharedArrayBuffer): number => {
      const before = process.resourceUsage().minorPageFault;
      new Uint8Array(b).fill(1);
      return process.resourceUsage().minorPageFault - before;
    };
    const fresh = fill(sharedPageAlignedBuffer(bytes));
    const prepared = fill(buffer!);
    // 6,144 faults for 24 MiB of fresh 4 KiB pages, where the kernel gives those (THP "madvise" or "never").
    if (fresh > 3000) expect(prepared).toBeLessThan(fresh / 8);
    else expect(prepared).toBeLessThanOrEqual(fresh);
  });

  it('prepareOutput – sets nothing aside for a small adapter or one above the reserve limit', () => {
    expect(prepareOutput(coreWith(256 * MIB), runWith(1024))).toBeUndefined();
    expect(prepareOutput(coreWith(0), runWith(6 * MIB))).toBeUndefined();
  });

  it('prepareOutput – resolves without a buffer when it cannot be faulted in, so the close allocates its own', async () => {
    const broken = {
      config: { payloadReserveBytes: 256 * MIB },
      digests: {
        prefault: () => {
          throw new Error('no worker thread');
        },
      },
    } as unknown as CoordinatorCore;
    await expect(prepareOutput(broken, runWith(6 * MIB))).resolves.toBeUndefined();
  });

  it('allocatorWith – hands the spare out once, to a request of the adapter\'s size; others get fresh memory', () => {
    const spare = new SharedArrayBuffer(8 * MIB);
    const allocate = allocatorWith(spare, 8 * MIB);
    expect(allocate(4 * MIB)).not.toBe(spare);
    expect(allocate(8 * MIB)).toBe(spare);
    const again = allocate(8 * MIB);
    expect(again).not.toBe(spare);
    expect(again.byteLength).toBeGreaterThanOrEqual(8 * MIB);
    expect(allocatorWith(undefined, 8 * MIB)(8 * MIB).byteLength).toBeGreaterThanOrEqual(8 * MIB);
  });
});
