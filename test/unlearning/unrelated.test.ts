/**
 * The gate on text unlike both the forget set and the client's other data, with the shipped pretrained base: a
 * relative score compares an input only with those two, so short unrelated sentences next to a mail corpus used to
 * got an arbitrary score, and 7 of 10 got the spam adapter at full weight (public-text.ts). The neighbour input
 * block (neighbours.ts) scores such text near 0 by itself; the bank-free form still needs the public text.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeExamples, makeExample } from '../../src/data/index.js';
import type { Example } from '../../src/data/index.js';
import { GPT2 } from '../../src/model/gpt2.js';
import { byteTokenizer } from '../../src/model/tokenizer.js';
import { ensurePretrainedBase } from '../../src/train/pretrain.js';
import { detectorLayers } from '../../src/unlearning/detector.js';
import { detectorScores } from '../../src/unlearning/device-detector.js';
import { extractFeatures } from '../../src/unlearning/features.js';
import { gateWeight } from '../../src/unlearning/gate.js';
import { DEFAULT_UNLEARNING_REQUEST, fitRequestDetector, type UnlearningRequestConfig } from '../../src/unlearning/request.js';
import { GROUPS, groupSplit } from './fixtures.js';

const SEQ_LEN = 128;
const UNRELATED = [
  'The committee will meet on Thursday to discuss the budget.',
  'Lunch at noon? I will bring the sandwiches.',
  'Hi',
  'ok thanks',
  'Please find attached the quarterly report. Let me know if you have any questions about the numbers.',
  'I love you',
  'The train was late again this morning, so I missed the first talk.',
  'Can you pick up milk and bread on the way home?',
  'Hello world, this is a test of the unlearning gate.',
  'Happy birthday! Hope you have a wonderful day.',
];

let dataDir: string;
let model: GPT2;
beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'lethe-unl-unrelated-'));
  const base = await ensurePretrainedBase(dataDir); // the shipped base: nothing is trained
  model = new GPT2(base.config, base.weights);
});
afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

/** Gate weights of `probes` when 60 spam-1 mails are forgotten against 300 of the client's ham mails. */
function weights(config: UnlearningRequestConfig, probes: readonly (readonly Example[])[]): number[][] {
  const encode = (examples: readonly Example[]) => encodeExamples(examples, byteTokenizer(), SEQ_LEN);
  const split = groupSplit();
  const ham = GROUPS.filter((g) => g.includes('ham')).flatMap((g) => split.train(g, 100));
  const { detector, gate } = fitRequestDetector(model, encode(split.train('spam-1', 60)), encode(ham), config);
  const layers = detectorLayers(config.detector, model.config.nLayer);
  return probes.map((examples) => {
    const s = detectorScores(detector, extractFeatures(model, encode(examples), layers, config.detector.pooling, 32, config.detector.input ?? undefined));
    return Array.from(s.scores, (z, i) => gateWeight(gate, z, -2, s.distances[i]));
  });
}

const share = (ws: readonly number[], min: number): number => ws.filter((w) => w >= min).length / ws.length;

describe('unlearning gate on unrelated text', () => {
  it('gives short unrelated sentences weight 0 while held-out forget-group mails keep their weight; the bank-free detector needs public text for that', () => {
    const probes = [UNRELATED.map((t) => makeExample(t, 0)), groupSplit().test('spam-1', 1000)];
    const bankFree = { ...DEFAULT_UNLEARNING_REQUEST, detector: { ...DEFAULT_UNLEARNING_REQUEST.detector, bank: false, neighbours: 0 } };
    const [unrelated, heldOut] = weights(DEFAULT_UNLEARNING_REQUEST, probes);
    const [unrelatedFree, heldOutFree] = weights(bankFree, probes);
    const [unrelatedBefore, heldOutBefore] = weights({ ...bankFree, publicSnippets: 0 }, probes);
    // The neighbour input block: short sentences are near neither bank.
    expect(unrelated!.filter((w) => w < 0.05).length).toBeGreaterThanOrEqual(9);
    // Its detector separates spam-1 from ham only so far: about a third of its unseen mails reach ½.
    expect(share(heldOut!, 0.5)).toBeGreaterThanOrEqual(0.25);
    // Bank-free (Gaussian blocks), a relative score is arbitrary far from both models without public text.
    expect(share(unrelatedBefore!, 0.05)).toBeGreaterThanOrEqual(0.5); // the failure public text fixes
    expect(unrelatedFree!.filter((w) => w < 0.05).length).toBeGreaterThanOrEqual(9);
    expect(share(heldOutFree!, 0.5)).toBeGreaterThanOrEqual(share(heldOutBefore!, 0.5) - 0.05);
  }, 150_000); // two bank-free detector fits with a 1,024-wide Gaussian input block (~5 s each quiet)
});
