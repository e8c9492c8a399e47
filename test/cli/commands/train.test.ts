import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../../../src/backend/backend.js';
import { progressLine } from '../../../src/cli/progress.js';
import { LOCAL_TRAINERS, trainCommand } from '../../../src/cli/commands/train.js';
import { UsageError } from '../../../src/cli/command.js';
import { pretrainCorpus } from '../../../src/data/index.js';
import { loadPeftAdapter } from '../../../src/model/lora.js';
import { TINY_CONFIG } from '../../../src/model/gpt2.js';
import { DEFAULT_PRETRAIN, ensurePretrainedBase } from '../../../src/train/pretrain.js';

/** Runs a command with stdout captured; stderr (progress) is silenced. */
async function capture(argv: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    return { code: await trainCommand.run(argv), stdout };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe('lethe train --local', () => {
  let dataDir: string;

  beforeAll(async () => {
    await initBackend('wasm');
    dataDir = await mkdtemp(join(tmpdir(), 'lethe-train-cli-'));
    // A barely trained TINY_CONFIG base, so the command finds one instead of pretraining for minutes.
    await ensurePretrainedBase(dataDir, {
      config: { ...DEFAULT_PRETRAIN, steps: 2, batchSize: 1, seqLen: 16, warmupSteps: 1, evalWindows: 1 },
      corpus: { name: 'tail', documents: pretrainCorpus().documents.slice(-40) },
    });
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('train – trains on the spam train split, reports test accuracy (also on the federated eval mails) as JSON and saves a PEFT adapter', async () => {
    const out = join(dataDir, 'adapter');
    const { code, stdout } = await capture([
      '--local', '--mode', 'backprop', '--steps', '3', '--batch', '4', '--seq-len', '16', '--lora-r', '2', '--limit', '200',
      '--data-dir', dataDir, '--backend', 'wasm', '--json', '--out', out,
    ]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout.trim()) as Record<string, number | string>;
    expect(report).toMatchObject({ mode: 'backprop', trainable: 'ffa', steps: 3, lora_r: 2, train_examples: 160, test_examples: 40, eval_examples: 40, out });
    expect(report.test_accuracy).toBeGreaterThanOrEqual(0);
    expect(report.test_accuracy).toBeLessThanOrEqual(1);
    // 40 test mails are fewer than the federated eval's 512, so both scores cover the same mails.
    expect(report.eval_accuracy).toBe(report.test_accuracy);
    const saved = await loadPeftAdapter(out);
    expect(saved.lora).toMatchObject({ r: 2, alpha: 4, numLabels: 2 });
    expect(JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'))).toMatchObject({ peft_type: 'LORA', r: 2 });
    expect(saved.adapter.get('score.weight')!.shape).toEqual([2, TINY_CONFIG.nEmbd]);
  });

  it('train – with --dp-sigma trains by DP-SGD and reports the ε the accountant gives', async () => {
    const { code, stdout } = await capture([
      '--local', '--steps', '2', '--batch', '8', '--seq-len', '16', '--limit', '100', '--dp-sigma', '1.1', '--dp-clip', '0.5',
      '--data-dir', dataDir, '--backend', 'wasm', '--json',
    ]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout.trim()) as Record<string, number>;
    expect(report).toMatchObject({ dp_sigma: 1.1, dp_clip: 0.5, dp_q: 0.1, dp_delta: 1e-5, dp_expected_batch: 8 });
    expect(report.dp_epsilon).toBeGreaterThan(0);
    expect(Number.isFinite(report.dp_epsilon)).toBe(true);
  });

  it('train – runs the forward-only modes (mezo, essa) with their own flags and default learning rates; --init starts from a saved adapter', async () => {
    const common = ['--local', '--steps', '2', '--batch', '4', '--seq-len', '16', '--lora-r', '2', '--limit', '100', '--data-dir', dataDir, '--backend', 'wasm', '--json'];
    const mezo = await capture([...common, '--mode', 'mezo', '--eps', '0.005']);
    expect(mezo.code).toBe(0);
    expect(JSON.parse(mezo.stdout.trim())).toMatchObject({ mode: 'mezo', trainable: 'ffa', steps: 2, lr: 6e-3 });
    // ESSA searches the spectrum of a trained B·A, so it starts (--init) from a saved adapter.
    const warm = join(dataDir, 'warm');
    expect((await capture([...common, '--mode', 'backprop', '--out', warm])).code).toBe(0);
    const essa = await capture([...common, '--mode', 'essa', '--pairs', '2', '--fitness', 'accuracy', '--init', warm]);
    expect(essa.code).toBe(0);
    const report = JSON.parse(essa.stdout.trim()) as Record<string, number | string>;
    expect(report).toMatchObject({ mode: 'essa', steps: 2, lr: 1e-2, lora_r: 2 });
    const fresh = JSON.parse(mezo.stdout.trim()) as Record<string, number>;
    expect(report.test_loss_before).not.toBe(fresh.test_loss_before); // scored the warm adapter, not a fresh one
    expect(report.accuracy_after).toBeGreaterThanOrEqual(0);
    await expect(capture([...common, '--mode', 'essa', '--dp-sigma', '1'])).rejects.toThrow(/no DP variant/);
  });

  it('train – refuses to run without --local and names unknown modes', async () => {
    await expect(trainCommand.run(['--mode', 'backprop'])).rejects.toBeInstanceOf(UsageError);
    await expect(trainCommand.run(['--local', '--mode', 'nope'])).rejects.toThrow(/unknown --mode "nope"; expected one of backprop/);
    expect(Object.keys(LOCAL_TRAINERS)).toContain('backprop');
  });

  it('progress line – shows the bar, step, loss, rate and ETA', () => {
    expect(progressLine('pretrain', { step: 30, steps: 120, loss: 2.5, elapsedSeconds: 30, rate: '900 tok/s' })).toBe(
      'pretrain [######..................] 30/120 loss 2.5000 900 tok/s ETA 1m30s',
    );
  });
});
