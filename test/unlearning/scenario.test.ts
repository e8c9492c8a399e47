import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { installWasmTransposedMatMul } from '../../src/backend/wasm-matmul.js';
import { makeExample, pretrainCorpus } from '../../src/data/index.js';
import type { GPT2 } from '../../src/model/gpt2.js';
import type { TrainerData } from '../../src/train/types.js';
import { evaluate } from '../../src/train/evaluate.js';
import type { UtilityAdapter } from '../../src/unlearning/adapter.js';
import { DEFAULT_UNLEARNING_ADAPTER, UNLEARNING_LORA, trainUnlearningAdapter } from '../../src/unlearning/adapter.js';
import { maxOverlap } from '../../src/unlearning/orthogonality.js';
import type { UnlearningPackage } from '../../src/unlearning/package.js';
import { decodeUnlearningPackage, encodeUnlearningPackage } from '../../src/unlearning/package.js';
import { DEFAULT_GATE } from '../../src/unlearning/gate.js';
import { DEFAULT_UNLEARNING_REQUEST, runUnlearningRequest } from '../../src/unlearning/request.js';
import type { Prediction } from '../../src/unlearning/serving.js';
import { UnlearningServing } from '../../src/unlearning/serving.js';
import { encode, groupSplit, SMALL, utilityScenario } from './fixtures.js';

const FORGET = ['hard-ham-1', 'spam-2', 'easy-ham-2'] as const; // requests 1, 2, 3
const RETAINED = ['easy-ham-1', 'spam-1'] as const;
// r 4 at width 32: three requests' orthogonal A's use 12 of the 32 input directions, leaving each room to fit.
// Each gate may take over up to retainBudget of the retained inputs (gate.ts); three requests served together add up,
// so each gets a third of the 5-point allowance below (the default 3% is sized for one request on real data).
const REQUEST = {
  ...DEFAULT_UNLEARNING_REQUEST,
  adapter: { ...DEFAULT_UNLEARNING_ADAPTER, lora: { ...UNLEARNING_LORA, r: 4, alpha: 8 }, steps: 80, batchSize: 24, lr: 3e-3 },
  gate: { ...DEFAULT_GATE, retainBudget: 0.01 },
};

function predict(serving: UnlearningServing, data: TrainerData): Prediction {
  const ids = tf.tensor2d(data.ids, [data.n, data.seqLen], 'int32');
  const mask = tf.tensor2d(data.mask, [data.n, data.seqLen]);
  try {
    return serving.predict(ids, mask);
  } finally {
    tf.dispose([ids, mask]);
  }
}

function accuracy(p: Prediction, data: TrainerData): number {
  let correct = 0;
  for (let i = 0; i < data.n; i++) if ((p.probabilities[2 * i + 1]! > p.probabilities[2 * i]! ? 1 : 0) === data.labels[i]) correct += 1;
  return correct / data.n;
}

const served = (pkgs: readonly UnlearningPackage[]) => pkgs.map((p, i) => ({ id: `request-${i + 1}`, ...p }));

describe('unlearning scenario: tiny GPT-2, real SpamAssassin groups forgotten one after another', () => {
  let model: GPT2;
  let utility: UtilityAdapter;
  let tensorsAtStart: number;
  const forget: TrainerData[] = [];
  const pkgs: UnlearningPackage[] = [];
  const split = groupSplit();
  const retainHeldOut = encode(RETAINED.flatMap((g) => split.test(g, 40)));
  const generic = encode(RETAINED.flatMap((g) => split.train(g, 80).slice(40))); // the client's other mails

  beforeAll(async () => {
    await initBackend('wasm');
    installWasmTransposedMatMul();
    ({ model, utility } = await utilityScenario(40, 40));
    tensorsAtStart = tf.memory().numTensors;
    for (const group of FORGET) {
      const data = encode(split.train(group, 24));
      forget.push(data);
      pkgs.push(await runUnlearningRequest(model, utility, data, generic, pkgs.map((p) => p.adapter), REQUEST));
    }
  }, 120_000);

  afterAll(() => model?.dispose());

  it('unlearning – request 1 sends its forgotten samples to chance although the utility adapter still knows them', () => {
    const serving = new UnlearningServing(model, utility, served(pkgs.slice(0, 1)));
    try {
      const before = evaluate(model, utility.lora, utility.adapter, forget[0]!).accuracy;
      const after = accuracy(predict(serving, forget[0]!), forget[0]!);
      expect(Math.abs(before - 0.5)).toBeGreaterThanOrEqual(0.25); // the utility adapter decides these mails confidently
      expect(Math.abs(after - 0.5)).toBeLessThanOrEqual(0.125);
    } finally {
      serving.dispose();
    }
  });

  it('unlearning – retained held-out accuracy drops by at most 5 points with all three requests served', () => {
    const serving = new UnlearningServing(model, utility, served(pkgs));
    try {
      const before = evaluate(model, utility.lora, utility.adapter, retainHeldOut).accuracy;
      expect(accuracy(predict(serving, retainHeldOut), retainHeldOut)).toBeGreaterThanOrEqual(before - 0.05);
    } finally {
      serving.dispose();
    }
  });

  it('unlearning – gates are exactly 0 on unrelated prose and near 1 on the forget samples', () => {
    const prose = encode(pretrainCorpus().documents.slice(0, 24).map((d) => makeExample(d.slice(0, 400), 0)));
    const serving = new UnlearningServing(model, utility, served(pkgs.slice(0, 1)));
    try {
      expect(predict(serving, prose).gates.every((w) => w === 0)).toBe(true);
      const onForget = predict(serving, forget[0]!).gates;
      expect(onForget.reduce((a, w) => a + w, 0) / onForget.length).toBeGreaterThan(0.9);
    } finally {
      serving.dispose();
    }
  });

  it('unlearning – three sequential requests stay orthogonal (≤ 0.05) and every forget set stays near chance', () => {
    expect(maxOverlap(pkgs[1]!.adapter, [pkgs[0]!.adapter]).ratio).toBeLessThanOrEqual(0.05);
    expect(maxOverlap(pkgs[2]!.adapter, [pkgs[0]!.adapter, pkgs[1]!.adapter]).ratio).toBeLessThanOrEqual(0.05);
    const serving = new UnlearningServing(model, utility, served(pkgs));
    try {
      forget.forEach((data, t) => {
        expect(Math.abs(accuracy(predict(serving, data), data) - 0.5), `request ${t + 1}`).toBeLessThanOrEqual(0.2);
      });
    } finally {
      serving.dispose();
    }
  });

  it('unlearning – without projection or penalty, training drifts request 2 past the 0.05 overlap bound', async () => {
    const free = await trainUnlearningAdapter(model, utility, forget[1]!, [pkgs[0]!.adapter], { ...REQUEST.adapter, steps: 40, projectA: false, lambda: 0 });
    expect(free.metrics.max_overlap).toBeGreaterThan(0.05);
  });

  it('unlearning – a package round-trips through bytes and serves the same predictions', () => {
    const bytes = encodeUnlearningPackage(pkgs[1]!, SMALL);
    const back = decodeUnlearningPackage(bytes, { model: SMALL, priors: [pkgs[0]!.adapter] });
    const a = new UnlearningServing(model, utility, served([pkgs[0]!, pkgs[1]!]));
    const b = new UnlearningServing(model, utility, served([pkgs[0]!, back]));
    try {
      const pa = predict(a, forget[1]!);
      const pb = predict(b, forget[1]!);
      expect(pb.probabilities).toEqual(pa.probabilities);
      expect(pb.gates).toEqual(pa.gates);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('unlearning – training, serving and disposing leave tf.memory unchanged', () => {
    const serving = new UnlearningServing(model, utility, served(pkgs));
    predict(serving, forget[0]!);
    serving.dispose();
    expect(tf.memory().numTensors).toBe(tensorsAtStart);
  });
});
