import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import type { HostTensor } from '../../src/tensors/host.js';
import {
  addNoise,
  forEachNoise,
  NormalStream,
  normals,
  perturbTf,
  scratchFor,
  sizesOf,
  writePerturbed,
  zOrder,
} from '../../src/train/perturb.js';

const sha256 = (a: Float32Array): string => createHash('sha256').update(Buffer.from(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

function adapter(): Map<string, HostTensor> {
  // Odd sizes, so the Box–Muller pair straddles tensor boundaries; insertion order differs from zOrder.
  return new Map<string, HostTensor>([
    ['score.weight', { shape: [2, 5], data: Float32Array.from({ length: 10 }, (_, i) => i / 10) }],
    ['h.1.attn.c_attn.lora_B.weight', { shape: [3, 3], data: Float32Array.from({ length: 9 }, (_, i) => -i) }],
    ['h.0.attn.c_attn.lora_B.weight', { shape: [7, 1], data: new Float32Array(7).fill(0.5) }],
  ]);
}

describe('perturb – z(s)', () => {
  it('z(s) – matches the pinned values of the Alea + Box–Muller generator', () => {
    // Arrange / Act
    const z0 = Array.from(normals(0, 3));
    const z1 = Array.from(normals(4294967295, 2));
    // Assert: changing the generator silently would change what every uploaded seed means.
    expect(z0).toEqual([0.4677124321460724, -1.2596206665039062, -0.24024389684200287]);
    expect(z1).toEqual([-0.23752281069755554, -0.5711283087730408]);
  });

  it('z(s) – is bitwise identical in a separate node process (dist build)', () => {
    // Arrange
    const dist = new URL('../../dist/train/perturb.js', import.meta.url);
    expect(existsSync(dist), 'run `npm run build` (npm test does) so dist/ exists').toBe(true);
    const script =
      `const m = await import(${JSON.stringify(dist.href)});` +
      `const { createHash } = await import('node:crypto');` +
      `const z = m.normals(7, 100001);` +
      `console.log(createHash('sha256').update(Buffer.from(z.buffer)).digest('hex'));`;
    // Act
    const child = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim();
    // Assert
    expect(child).toBe(sha256(normals(7, 100001)));
  });

  it('z(s) – is standard normal (mean 0, variance 1) and differs between seeds', () => {
    const z = normals(42, 200_000);
    let sum = 0;
    let sq = 0;
    for (const x of z) {
      sum += x;
      sq += x * x;
    }
    expect(Math.abs(sum / z.length)).toBeLessThan(0.01);
    expect(Math.abs(sq / z.length - 1)).toBeLessThan(0.02);
    expect(sha256(normals(43, 1000))).not.toBe(sha256(normals(42, 1000)));
  });

  it('stream – chunked fills equal one long fill, whatever the chunk sizes', () => {
    const whole = normals(99, 1001);
    const stream = new NormalStream(99);
    const parts = [1, 2, 3, 500, 495].map((n) => {
      const out = new Float32Array(n);
      stream.fill(out);
      return out;
    });
    const joined = new Float32Array(1001);
    let at = 0;
    for (const p of parts) {
      joined.set(p, at);
      at += p.length;
    }
    expect(sha256(joined)).toBe(sha256(whole));
  });

  it('seeds – rejects seeds outside the unsigned 32-bit range', () => {
    expect(() => normals(-1, 3)).toThrow(/2\^32/);
    expect(() => normals(2 ** 32, 3)).toThrow(/2\^32/);
    expect(() => normals(1.5, 3)).toThrow(/integer/);
  });
});

describe('perturb – applying z to tensors', () => {
  it('multi-tensor z – walks tensors in sorted-name order as one continuous stream', () => {
    // Arrange
    const a = adapter();
    const names = [...a.keys()];
    const flat = normals(5, 26);
    // Act
    const seen: string[] = [];
    const got = new Float32Array(26);
    let at = 0;
    forEachNoise(sizesOf(a), names, 5, (name, z) => {
      seen.push(name);
      got.set(z, at);
      at += z.length;
    });
    // Assert
    expect(seen).toEqual(zOrder(names));
    expect(seen[0]).toBe('h.0.attn.c_attn.lora_B.weight');
    expect(sha256(got)).toBe(sha256(flat));
  });

  it('addNoise – θ + c·z then θ − c·z restores θ to float32 rounding, and only touches the named tensors', () => {
    const a = adapter();
    const before = new Map([...a].map(([n, t]) => [n, t.data.slice()]));
    addNoise(a, ['score.weight', 'h.1.attn.c_attn.lora_B.weight'], 11, 0.3);
    expect(a.get('score.weight')!.data).not.toEqual(before.get('score.weight'));
    expect(a.get('h.0.attn.c_attn.lora_B.weight')!.data).toEqual(before.get('h.0.attn.c_attn.lora_B.weight'));
    addNoise(a, ['score.weight', 'h.1.attn.c_attn.lora_B.weight'], 11, -0.3);
    for (const [name, t] of a) {
      const b = before.get(name)!;
      for (let i = 0; i < b.length; i++) expect(Math.abs(t.data[i]! - b[i]!)).toBeLessThan(1e-6);
    }
  });

  it('writePerturbed – writes θ + c·z into scratch and leaves θ untouched', () => {
    const a = adapter();
    const names = [...a.keys()];
    const scratch = scratchFor(a, names);
    writePerturbed(a, scratch, names, 3, 0.01);
    const copy = new Map([...a].map(([n, t]) => [n, { shape: t.shape, data: t.data.slice() }]));
    addNoise(copy, names, 3, 0.01);
    for (const n of names) {
      expect(scratch.get(n)!.data).toEqual(copy.get(n)!.data);
      expect(scratch.get(n)!.data).not.toEqual(a.get(n)!.data);
    }
  });

  it('perturbTf – gives bitwise identical tensors on the cpu and wasm backends', async () => {
    // Arrange
    const host = adapter();
    const names = ['score.weight', 'h.1.attn.c_attn.lora_B.weight'];
    const run = async (backend: 'cpu' | 'wasm'): Promise<string[]> => {
      await initBackend(backend);
      const before = tf.memory().numTensors;
      const out = tf.tidy(() => {
        const params = new Map([...host].map(([n, t]) => [n, tf.tensor(t.data.slice(), [...t.shape])]));
        const p = perturbTf(params, names, 2024, 0.37);
        return zOrder(host.keys()).map((n) => sha256(p.get(n)!.dataSync() as Float32Array));
      });
      expect(tf.memory().numTensors).toBe(before);
      return out;
    };
    // Act
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    await initBackend('cpu');
    // Assert
    expect(wasm).toEqual(cpu);
    expect(cpu[0]).toBe(sha256(host.get(zOrder(host.keys())[0]!)!.data)); // untouched tensor passes through
  });
});
