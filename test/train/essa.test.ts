import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import type { GPT2 } from '../../src/model/gpt2.js';
import type { HostTensor, TensorMap } from '../../src/tensors/host.js';
import { gatherBatch } from '../../src/train/batches.js';
import {
  batchFitness,
  centredRanks,
  DEFAULT_ESSA,
  essaAdapter,
  essaInit,
  essaStateFromTensors,
  essaStateTensors,
  essaUpdate,
  evaluateMembers,
  generationSeeds,
  trainEssa,
  type EssaRecord,
} from '../../src/train/essa.js';
import { evaluate } from '../../src/train/evaluate.js';
import { trainMezo } from '../../src/train/mezo.js';
import { normals } from '../../src/train/perturb.js';
import { freshAdapter, syntheticTask, TEST_LORA, tinyModel } from './zo-fixtures.js';

let model: GPT2;
const data = syntheticTask(64, 'essa-task');

/** Fresh adapter with random B (std 0.05), so every ΔW has r non-zero singular values. */
function randomBAdapter(): Map<string, HostTensor> {
  const a = freshAdapter();
  for (const [name, t] of a) if (name.endsWith('lora_B.weight')) t.data.set(normals(name.length, t.data.length).map((x) => 0.05 * x));
  return a;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** B·A for one module, [dOut, dIn], in float64. */
function product(adapter: TensorMap, module: string): Float64Array {
  const a = adapter.get(`${module}.lora_A.weight`)!;
  const b = adapter.get(`${module}.lora_B.weight`)!;
  const [r, dIn] = a.shape as [number, number];
  const dOut = b.shape[0]!;
  const out = new Float64Array(dOut * dIn);
  for (let i = 0; i < dOut; i++) for (let k = 0; k < r; k++) for (let j = 0; j < dIn; j++) out[i * dIn + j]! += b.data[i * r + k]! * a.data[k * dIn + j]!;
  return out;
}

beforeAll(async () => {
  await initBackend('wasm');
  model = tinyModel();
});
afterAll(() => model.dispose());

describe('essa – search space', () => {
  it('essaInit – factors each ΔW = B·A and reproduces the start adapter at s0 with A and the head unchanged', () => {
    // Arrange
    const start = randomBAdapter();
    // Act
    const state = essaInit(start);
    const rebuilt = essaAdapter(state, start);
    // Assert
    expect(state.factors.map((f) => f.module)).toEqual([
      'h.0.attn.c_attn',
      'h.0.attn.c_proj',
      'h.1.attn.c_attn',
      'h.1.attn.c_proj',
    ]);
    expect(state.s).toHaveLength(4 * TEST_LORA.r);
    expect(state.active).toHaveLength(state.s.length);
    for (const [name, t] of start) {
      if (name.endsWith('lora_B.weight')) expect(maxAbsDiff(rebuilt.get(name)!.data, t.data)).toBeLessThan(1e-6);
      else expect(rebuilt.get(name)).toBe(t);
    }
  });

  it('essaInit – works from a fresh adapter (B = 0): s = 0 and a member moves ΔW off zero', () => {
    const start = freshAdapter();
    const state = essaInit(start);
    expect(Array.from(state.s).every((x) => x === 0)).toBe(true);
    expect(maxAbsDiff(essaAdapter(state, start).get('h.0.attn.c_attn.lora_B.weight')!.data, start.get('h.0.attn.c_attn.lora_B.weight')!.data)).toBe(0);
    const member = essaAdapter(state, start, state.s.map((_, i) => (i % 4 === 0 ? 0.1 : 0)));
    expect(Math.max(...product(member, 'h.0.attn.c_attn').map(Math.abs))).toBeGreaterThan(1e-3);
  });

  it('essaAdapter – scaling s scales ΔW = B(s)·A exactly (ΔW = U diag(s) Vᵀ)', () => {
    const start = randomBAdapter();
    const state = essaInit(start);
    const doubled = essaAdapter(state, start, state.s.map((x) => 2 * x));
    const before = product(start, 'h.1.attn.c_attn');
    const after = product(doubled, 'h.1.attn.c_attn');
    for (let i = 0; i < before.length; i += 37) expect(after[i]).toBeCloseTo(2 * before[i]!, 5);
  });

  it('essaInit – with topFraction searches only the largest values of each projection', () => {
    const state = essaInit(randomBAdapter(), { ...DEFAULT_ESSA, topFraction: 0.5 });
    expect(Array.from(state.active)).toEqual([0, 1, 4, 5, 8, 9, 12, 13]);
    const records: EssaRecord[] = [
      { seed: 1, fPlus: 1, fMinus: 0 },
      { seed: 2, fPlus: 0, fMinus: 1 },
    ];
    const next = essaUpdate(state, records);
    state.s.forEach((x, i) => (state.active.includes(i) ? expect(next.s[i]).not.toBe(x) : expect(next.s[i]).toBe(x)));
  });
});

describe('essa – update', () => {
  it('centredRanks – maps to [−0.5, 0.5] and gives tied values their mean rank', () => {
    const r = centredRanks([3, 1, 2, 0]);
    [0.5, -1 / 6, 1 / 6, -0.5].forEach((x, i) => expect(r[i]).toBeCloseTo(x, 12));
    expect(Array.from(centredRanks([5, 5, 1, 9]))).toEqual([0, 0, -0.5, 0.5]);
  });

  it('essaUpdate – moves s along ε of the better member (ascends fitness)', () => {
    const state = essaInit(randomBAdapter());
    const seed = 77;
    const eps = normals(seed, state.active.length);
    const up = essaUpdate(state, [{ seed, fPlus: 1, fMinus: 0 }], { ...DEFAULT_ESSA, l2: 0 });
    const down = essaUpdate(state, [{ seed, fPlus: 0, fMinus: 1 }], { ...DEFAULT_ESSA, l2: 0 });
    for (let j = 0; j < eps.length; j++) {
      const i = state.active[j]!;
      expect(Math.sign(up.s[i]! - state.s[i]!)).toBe(Math.sign(eps[j]!));
      expect(Math.sign(down.s[i]! - state.s[i]!)).toBe(-Math.sign(eps[j]!));
      expect(Math.abs(up.s[i]! - state.s[i]!)).toBeCloseTo(DEFAULT_ESSA.lr, 4); // Adam's first step has size lr
    }
    expect(up.t).toBe(1);
    expect(essaUpdate(state, [{ seed, fPlus: 0.5, fMinus: 0.5 }], { ...DEFAULT_ESSA, l2: 0 }).s).toEqual(state.s); // a tie carries no signal
  });

  it('essaUpdate – on the coordinator, from records alone, equals the client local update bitwise', () => {
    // Arrange: the client evaluates its members and applies the update locally
    const start = randomBAdapter();
    const clientState = essaInit(start);
    const batch = gatherBatch(data, Array.from({ length: 16 }, (_, i) => i));
    const records = evaluateMembers(clientState, start, generationSeeds('run', 0, 4), batchFitness(model, TEST_LORA, batch, 'loss'));
    const clientNext = essaUpdate(clientState, records);
    // Act: the coordinator holds a serialised copy of the state and receives the records in another order via JSON
    const coordinatorState = essaStateFromTensors(essaStateTensors(clientState));
    const received = (JSON.parse(JSON.stringify(records)) as EssaRecord[]).reverse();
    const coordinatorNext = essaUpdate(coordinatorState, received);
    // Assert
    expect(Buffer.from(coordinatorNext.s.buffer)).toEqual(Buffer.from(clientNext.s.buffer));
    expect(Buffer.from(coordinatorNext.m.buffer)).toEqual(Buffer.from(clientNext.m.buffer));
    expect(Buffer.from(coordinatorNext.v.buffer)).toEqual(Buffer.from(clientNext.v.buffer));
    expect(coordinatorNext.t).toBe(clientNext.t);
    expect(clientNext.s).not.toEqual(clientState.s);
    const a = essaAdapter(clientNext, start);
    const b = essaAdapter(coordinatorNext, start);
    for (const [name, t] of a) expect(Buffer.from(b.get(name)!.data.buffer)).toEqual(Buffer.from(t.data.buffer));
  });

  it('essaStateFromTensors – round-trips the state losslessly and rejects inconsistent sizes', () => {
    const state = essaUpdate(essaInit(randomBAdapter()), [{ seed: 3, fPlus: 2, fMinus: 1 }]);
    const back = essaStateFromTensors(essaStateTensors(state));
    expect(back).toEqual(state);
    const broken = essaStateTensors(state);
    broken.set('essa.m', { shape: [1], data: new Float32Array(1) });
    expect(() => essaStateFromTensors(broken)).toThrow(/inconsistent sizes/);
  });
});

describe('essa – training', () => {
  it('trainEssa – raises accuracy of an adapter warmed up by 10 MeZO steps, keeping A and the head', async () => {
    // Arrange
    const warm = (await trainMezo(model, TEST_LORA, freshAdapter(), data, { steps: 10, batchSize: 16, lr: 3e-3, eps: 1e-3, trainable: 'ffa', seed: 2 })).adapter;
    const before = evaluate(model, TEST_LORA, warm, data);
    // Act
    const r = await trainEssa(model, TEST_LORA, warm, data, { steps: 15, batchSize: 32, pairs: 8, fitness: 'accuracy', seed: 1, essa: { lr: 0.05 } });
    // Assert: at least 6 points on the 64 training examples
    const after = evaluate(model, TEST_LORA, r.adapter, data);
    expect(after.accuracy).toBeGreaterThanOrEqual(before.accuracy + 0.06);
    expect(r.trace).toHaveLength(15);
    expect(r.trace.every((g) => g.length === 8)).toBe(true);
    expect(r.trainable.every((n) => n.endsWith('lora_B.weight'))).toBe(true);
    expect(r.adapter.get('score.weight')).toEqual(warm.get('score.weight'));
    expect(r.adapter.get('h.0.attn.c_attn.lora_A.weight')).toEqual(warm.get('h.0.attn.c_attn.lora_A.weight'));
    expect(r.metrics.accuracy_after).toBeDefined();
  });

  it('trainEssa – the trace replays to the same final state on the coordinator', async () => {
    const start = randomBAdapter();
    const r = await trainEssa(model, TEST_LORA, start, data, { steps: 3, batchSize: 8, pairs: 2, fitness: 'loss', seed: 4 });
    let state = essaInit(start);
    for (const records of r.trace) state = essaUpdate(state, records);
    expect(state).toEqual(r.state);
  });

  it('trainEssa – keeps tf.memory().numTensors constant over 100 generations', async () => {
    const before = tf.memory().numTensors;
    let peak = before;
    await trainEssa(model, TEST_LORA, randomBAdapter(), data, {
      steps: 100,
      batchSize: 2,
      pairs: 1,
      fitness: 'loss',
      seed: 5,
      onStep: () => {
        peak = Math.max(peak, tf.memory().numTensors);
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(peak).toBe(before);
  });
});
