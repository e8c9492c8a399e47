import { describe, expect, it } from 'vitest';
import { roundRow, summarize, tableHeader, tableLine } from '../../src/demo/table.js';
import type { RoundInfo } from '../../src/wire/admin-messages.js';

function info(round: number, over: Partial<RoundInfo> = {}): RoundInfo {
  return {
    runId: 'run_1',
    round,
    state: 'ROUND_STATE_COMPLETED',
    sampled: 8,
    accepted: 7,
    failed: 1,
    startedAtMs: 10_000,
    finishedAtMs: 22_500,
    adapterSha256: Buffer.alloc(32),
    metrics: { mean_local_loss: 0.4321, eval_accuracy: 0.875, eval_loss: 0.3, bytes_up: 2048, bytes_down: 3 << 20 },
    epsilonAfter: 0,
    ...over,
  };
}

describe('demo table', () => {
  it('table – a round becomes a row with clients in, loss, accuracy, traffic and seconds', () => {
    const row = roundRow(info(3), false);
    expect(row).toEqual({
      round: 3, clientsIn: 7, clientsSampled: 8, meanLocalLoss: 0.4321, accuracy: 0.875, testLoss: 0.3,
      bytesUp: 2048, bytesDown: 3 << 20, seconds: 12.5, status: 'aggregated',
    });
    const line = tableLine(row, false);
    for (const cell of ['7/8', '0.4321', '87.5%', '2.0 KiB', '3.00 MiB', '12.5']) expect(line).toContain(cell);
  });

  it('table – with privacy the ε column shows the cumulative ε after the round', () => {
    const row = roundRow(info(1, { epsilonAfter: 1.23456 }), true);
    expect(row.epsilon).toBeCloseTo(1.23456, 9);
    expect(tableHeader(true)).toContain('ε spent');
    expect(tableLine(row, true)).toMatch(/1\.235$/);
  });

  it('table – a failed round says so instead of an accuracy', () => {
    const row = roundRow(info(2, { state: 'ROUND_STATE_FAILED', accepted: 1, metrics: {} }), false);
    expect(row.status).toBe('failed');
    expect(tableLine(row, false)).toContain('failed');
    expect(tableLine(row, false)).not.toContain('NaN');
  });

  it('table – the summary compares initial and final accuracy and totals the traffic', () => {
    const rows = [roundRow(info(1, { metrics: { eval_accuracy: 0.7, bytes_up: 1024, bytes_down: 1024 } }), false), roundRow(info(2), false)];
    const s = summarize(0.5, rows, 42.4);
    expect(s).toMatchObject({ 'initial accuracy': '50.0%', 'final accuracy': '87.5%', 'best accuracy': '87.5%', 'rounds aggregated': '2 of 2', 'bytes up (total)': '3.0 KiB', 'wall time': '42 s' });
  });
});
