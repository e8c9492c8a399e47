/**
 * The demo's report: one JSON document and one self-contained HTML page (inline SVG plots, no scripts, no external
 * assets) so it opens anywhere, including air-gapped hospital networks.
 */

export interface RoundRow {
  readonly round: number;
  /** Updates accepted into the aggregate. */
  readonly clientsIn: number;
  readonly clientsSampled: number;
  /** Mean of the clients' reported final local training loss (NaN when none reported). */
  readonly meanLocalLoss: number;
  /** Global adapter's accuracy on the test split after this round. */
  readonly accuracy: number;
  readonly testLoss: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly seconds: number;
  /** Privacy spent so far (ε at the run's δ), when DP is on. */
  readonly epsilon?: number;
  readonly status: 'aggregated' | 'failed';
}

export interface DemoReport {
  readonly title: string;
  readonly startedAt: string;
  readonly config: Readonly<Record<string, unknown>>;
  /** Accuracy of the untrained adapter on the same test split, for reference. */
  readonly initialAccuracy: number;
  readonly rounds: readonly RoundRow[];
  readonly summary: Readonly<Record<string, string | number>>;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface Series {
  readonly label: string;
  readonly color: string;
  readonly points: readonly (readonly [number, number])[];
}

/** A small line chart as inline SVG. Non-finite points are skipped. */
export function lineChart(title: string, series: readonly Series[], opts: { yMin?: number; yMax?: number } = {}): string {
  const W = 560;
  const H = 260;
  const pad = { l: 52, r: 16, t: 28, b: 36 };
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (pts.length === 0) return `<figure><figcaption>${escapeHtml(title)}: no data</figcaption></figure>`;
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  let y0 = opts.yMin ?? Math.min(...ys);
  let y1 = opts.yMax ?? Math.max(...ys);
  if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const sx = (x: number) => pad.l + ((x - x0) / (x1 - x0)) * (W - pad.l - pad.r);
  const sy = (y: number) => H - pad.b - ((y - y0) / (y1 - y0)) * (H - pad.t - pad.b);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => y0 + f * (y1 - y0));
  const grid = ticks
    .map((t) => `<line x1="${pad.l}" x2="${W - pad.r}" y1="${sy(t)}" y2="${sy(t)}" stroke="#ddd"/><text x="${pad.l - 6}" y="${sy(t) + 4}" text-anchor="end">${t.toPrecision(3)}</text>`)
    .join('');
  const lines = series
    .map((s) => {
      const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
      const d = p.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
      const dots = p.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`).join('');
      return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>${dots}`;
    })
    .join('');
  const legend = series.map((s, i) => `<text x="${pad.l + 8 + i * 150}" y="18" fill="${s.color}">■ ${escapeHtml(s.label)}</text>`).join('');
  return `<figure><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="11" role="img" aria-label="${escapeHtml(title)}">${grid}${lines}${legend}<text x="${W / 2}" y="${H - 6}" text-anchor="middle">round</text></svg><figcaption>${escapeHtml(title)}</figcaption></figure>`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

export function renderReportHtml(report: DemoReport): string {
  const acc: Series = { label: 'test accuracy', color: '#1f77b4', points: [[0, report.initialAccuracy], ...report.rounds.map((r) => [r.round, r.accuracy] as const)] };
  const loss: Series = { label: 'mean local loss', color: '#d62728', points: report.rounds.map((r) => [r.round, r.meanLocalLoss] as const) };
  const testLoss: Series = { label: 'test loss', color: '#2ca02c', points: report.rounds.map((r) => [r.round, r.testLoss] as const) };
  const eps = report.rounds.some((r) => r.epsilon !== undefined)
    ? lineChart('privacy spent (ε)', [{ label: 'ε', color: '#9467bd', points: report.rounds.map((r) => [r.round, r.epsilon ?? NaN] as const) }])
    : '';
  const rows = report.rounds
    .map(
      (r) =>
        `<tr><td>${r.round}</td><td>${r.status}</td><td>${r.clientsIn}/${r.clientsSampled}</td><td>${r.meanLocalLoss.toFixed(4)}</td><td>${(100 * r.accuracy).toFixed(2)}%</td><td>${formatBytes(r.bytesUp)}</td><td>${formatBytes(r.bytesDown)}</td><td>${r.seconds.toFixed(1)}</td>${r.epsilon !== undefined ? `<td>${r.epsilon.toFixed(3)}</td>` : ''}</tr>`,
    )
    .join('\n');
  const hasEps = report.rounds.some((r) => r.epsilon !== undefined);
  const summary = Object.entries(report.summary)
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(String(v))}</td></tr>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(report.title)}</title>
<style>body{font-family:sans-serif;max-width:1180px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}figure{display:inline-block;margin:0 1em 1em 0}pre{background:#f7f7f7;padding:1em;overflow:auto}</style>
</head><body>
<h1>${escapeHtml(report.title)}</h1>
<p>Started ${escapeHtml(report.startedAt)}.</p>
<h2>Summary</h2><table>${summary}</table>
${lineChart('global test accuracy', [acc], { yMin: 0, yMax: 1 })}
${lineChart('loss', [loss, testLoss])}
${eps}
<h2>Rounds</h2>
<table><tr><th>round</th><th>status</th><th>clients in</th><th>mean local loss</th><th>test accuracy</th><th>bytes up</th><th>bytes down</th><th>seconds</th>${hasEps ? '<th>ε spent</th>' : ''}</tr>
${rows}</table>
<h2>Configuration</h2><pre>${escapeHtml(JSON.stringify(report.config, null, 2))}</pre>
</body></html>
`;
}
