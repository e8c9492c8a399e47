/** Page-aligned buffers for direct I/O (src/tensors/page-aligned.ts). */
import { describe, expect, it } from 'vitest';
import { isPageAligned, PAGE_ALIGNED_MIN_BYTES, pageAlignedBuffer, sharedPageAlignedBuffer } from '../../src/tensors/page-aligned.js';

const MIB = 1 << 20;

describe('page-aligned buffers', () => {
  it('page-aligned – large buffers are zeroed, page-aligned shared memory of at least the size asked; small ones are ordinary and exact', () => {
    const large = pageAlignedBuffer(3 * MIB + 5);
    expect(large).toBeInstanceOf(SharedArrayBuffer);
    expect(isPageAligned(large)).toBe(true);
    expect(large.byteLength).toBeGreaterThanOrEqual(3 * MIB + 5);
    expect(new Uint8Array(large).every((b) => b === 0)).toBe(true);

    const small = pageAlignedBuffer(PAGE_ALIGNED_MIN_BYTES - 1);
    expect(small).toBeInstanceOf(ArrayBuffer);
    expect(isPageAligned(small)).toBe(false);
    expect(small.byteLength).toBe(PAGE_ALIGNED_MIN_BYTES - 1);
    expect(sharedPageAlignedBuffer(100)).toBeInstanceOf(SharedArrayBuffer); // shared even when small
    expect(isPageAligned(new SharedArrayBuffer(4 * MIB))).toBe(false);
  });

  it('page-aligned – past 1 GiB of them not yet collected, buffers are ordinary ones (the garbage collector does not count wasm memories)', () => {
    // Untouched wasm memories cost address space, not resident memory.
    const held: ArrayBufferLike[] = [];
    for (let i = 0; i < 40; i++) held.push(sharedPageAlignedBuffer(32 * MIB));
    const aligned = held.filter(isPageAligned).length;
    expect(aligned).toBeGreaterThan(0);
    expect(aligned).toBeLessThanOrEqual(32); // 32 × 32 MiB = 1 GiB
    expect(held.every((b) => b.byteLength >= 32 * MIB && b instanceof SharedArrayBuffer)).toBe(true);
    expect(isPageAligned(pageAlignedBuffer(32 * MIB))).toBe(false);
  });
});
