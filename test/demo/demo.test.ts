/**
 * The demo end to end on a tiny checkpoint: real coordinator and client processes (dist/cli/main.js), a table line
 * per round, the report files, and no process left behind.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/backend.js';
import { DEFAULT_DEMO } from '../../src/demo/config.js';
import { runDemo } from '../../src/demo/demo.js';
import type { GPT2Config } from '../../src/model/gpt2.js';
import { tempDir, writeTestModel } from '../client/helpers.js';
import { LETHE_MAIN, requireFreshBuild } from '../e2e/harness.js';

const MODEL: GPT2Config = Object.freeze({ vocabSize: 257, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 2, layerNormEpsilon: 1e-5 });

describe('demo', () => {
  const dir = tempDir('lethe-demo-');
  beforeAll(async () => {
    requireFreshBuild();
    await initBackend('cpu');
  });
  afterAll(() => dir.remove());

  it('demo – runs the rounds with real processes, prints a line per round, writes the report and leaves no process behind', async () => {
    // Arrange
    const dataDir = join(dir.path, 'demo');
    const baseModel = await writeTestModel(dir.path, MODEL);
    const out: string[] = [];

    // Act
    const result = await runDemo(
      { ...DEFAULT_DEMO, dataDir, clients: 2, rounds: 2, baseModel, seqLen: 32, localSteps: 5, batchSize: 8, lr: 0.02, roundDeadlineS: 60, backend: 'wasm' },
      { out: (t) => out.push(t), entry: { executable: process.execPath, script: LETHE_MAIN }, backend: 'cpu' },
    );

    // Assert
    const text = out.join('');
    expect(result.run?.state).toBe('RUN_STATE_COMPLETED');
    expect(result.report.rounds.map((r) => [r.round, r.status, r.clientsIn])).toEqual([
      [1, 'aggregated', 2],
      [2, 'aggregated', 2],
    ]);
    expect(result.report.rounds.every((r) => Number.isFinite(r.accuracy) && r.bytesUp > 0)).toBe(true);
    expect(text).toMatch(/Initial test accuracy/);
    expect(text).toMatch(/round\s+clients in\s+mean local loss\s+test accuracy/);
    expect(text).toMatch(/final accuracy/);
    const report = JSON.parse(readFileSync(result.reportJson, 'utf8')) as { rounds: unknown[]; initialAccuracy: number };
    expect(report.rounds).toHaveLength(2);
    expect(existsSync(result.reportHtml)).toBe(true);
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(join(dataDir, 'session')));
    expect(left).toEqual([]);
  }, 150_000);
});
