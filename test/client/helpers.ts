/** Shared fixtures of the client tests: temporary directories and a tiny GPT-2 checkpoint, so runs need no pretraining. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveCheckpoint } from '../../src/model/checkpoint.js';
import { initWeights, type GPT2Config } from '../../src/model/gpt2.js';

/** 2 layers × 16 wide, byte vocabulary: a forward pass over a batch takes milliseconds. */
export const TEST_MODEL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 16, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Writes the test model as a Hugging Face checkpoint directory and returns its path (a run's base_model). */
export async function writeTestModel(dir: string, config: GPT2Config = TEST_MODEL): Promise<string> {
  const path = join(dir, 'base-model');
  await saveCheckpoint(path, config, initWeights(config, 'client-test'));
  return path;
}

/** A run config (snake_case JSON) on the test model over the built-in spam task, merged with `extra`. */
export function runConfig(baseModel: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'client-test',
    base_model: baseModel,
    seq_len: 32,
    lora: { r: 4, alpha: 8 },
    rounds: 2,
    min_clients: 1,
    round_deadline_s: 60,
    local: { steps: 5, batch_size: 8, lr: 0.01 },
    eval_data: 'builtin:spam',
    ...extra,
  };
}
