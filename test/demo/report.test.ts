import { describe, expect, it } from 'vitest';
import { lineChart, renderReportHtml, type DemoReport } from '../../src/demo/report.js';

const report: DemoReport = {
  title: 'Lethe demo <test>',
  startedAt: '2026-11-28T12:00:00Z',
  config: { rounds: 2 },
  initialAccuracy: 0.5,
  rounds: [
    { round: 1, clientsIn: 3, clientsSampled: 3, meanLocalLoss: 0.6, accuracy: 0.7, testLoss: 0.55, bytesUp: 3000, bytesDown: 9000, seconds: 2, status: 'aggregated' },
    { round: 2, clientsIn: 2, clientsSampled: 3, meanLocalLoss: 0.4, accuracy: 0.8, testLoss: 0.45, bytesUp: 2000, bytesDown: 9000, seconds: 2, epsilon: 1.5, status: 'aggregated' },
  ],
  summary: { 'final accuracy': '80.00%' },
};

describe('demo report', () => {
  it('report – renders a self-contained page with one plotted point per round and escaped text', () => {
    const html = renderReportHtml(report);
    expect(html).not.toMatch(/<script|src=|href=/);
    expect(html).toContain('Lethe demo &#60;test&#62;');
    expect(html).toContain('80.00%');
    expect(html).toContain('privacy spent');
    // accuracy chart: initial point + 2 rounds
    const accChart = lineChart('a', [{ label: 'x', color: '#000', points: [[0, 0.5], [1, 0.7], [2, 0.8]] }]);
    expect(accChart.match(/<circle/g)).toHaveLength(3);
  });

  it('report – skips non-finite points instead of drawing NaN coordinates', () => {
    const svg = lineChart('loss', [{ label: 'l', color: '#000', points: [[1, NaN], [2, 0.3], [3, 0.2]] }]);
    expect(svg).not.toContain('NaN');
    expect(svg.match(/<circle/g)).toHaveLength(2);
  });
});
