/** A run's payload layout (src/coordinator/layout.ts): packing tensors into blob bytes and reading them back. */
import { describe, expect, it } from 'vitest';
import { packTensors, unpackTensors, viewTensors, type Layout } from '../../src/coordinator/layout.js';

const LAYOUT: Layout = new Map([
  ['a', [2, 3]],
  ['b', [4]],
]);

function payload(offset: number): Uint8Array {
  const buffer = new ArrayBuffer(offset + 40);
  new Float32Array(buffer, 0, 10 + Math.floor(offset / 4)).forEach((_, i, a) => (a[i] = i));
  return new Uint8Array(buffer, offset, 40);
}

describe('layout', () => {
  it('viewTensors – reads 4-byte-aligned bytes as views of them, without copying', () => {
    // Prepare
    const bytes = payload(8);
    // Execute
    const tensors = viewTensors(bytes, LAYOUT);
    // Assert
    expect(tensors.get('a')!.data.buffer).toBe(bytes.buffer);
    expect(tensors.get('b')!.data.byteOffset).toBe(8 + 24);
    expect([...tensors.get('a')!.data]).toEqual([2, 3, 4, 5, 6, 7]);
    expect(tensors.get('b')!.shape).toEqual([4]);
  });

  it('viewTensors – copies bytes that do not start 4-byte aligned, with the same values as unpackTensors', () => {
    // Prepare: the payload of payload(0), moved to an odd offset.
    const source = payload(0);
    const odd = new Uint8Array(41).subarray(1);
    odd.set(source);
    // Execute
    const tensors = viewTensors(odd, LAYOUT);
    // Assert
    expect(tensors.get('a')!.data.buffer).not.toBe(odd.buffer);
    expect(tensors).toEqual(unpackTensors(source, LAYOUT));
  });

  it('viewTensors – refuses bytes of another length than the layout needs', () => {
    expect(() => viewTensors(payload(0).subarray(0, 36), LAYOUT)).toThrow(/36 bytes; its layout needs 40/);
  });

  it('packTensors – returns a view when the tensors already lie back to back in layout order, else a copy', () => {
    // Prepare
    const bytes = payload(4);
    const views = viewTensors(bytes, LAYOUT);
    const reordered = new Map([...views].reverse());
    const separate = unpackTensors(bytes, LAYOUT);
    // Execute
    const packedViews = packTensors(views, LAYOUT);
    const packedReordered = packTensors(reordered, LAYOUT);
    const packedSeparate = packTensors(separate, LAYOUT);
    // Assert
    expect(packedViews.buffer).toBe(bytes.buffer);
    expect(packedViews.byteOffset).toBe(4);
    expect(packedReordered.buffer).toBe(bytes.buffer); // map order does not matter, layout order does
    for (const packed of [packedViews, packedSeparate]) expect(Buffer.from(packed).equals(bytes)).toBe(true);
    expect(packedSeparate.buffer).not.toBe(bytes.buffer);
  });
});
