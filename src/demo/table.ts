/**
 * The demo's live table and summary: a RoundInfo (admin.proto ListRounds) becomes a report row (report.ts) and a
 * fixed-width line. Pure.
 */
import type { RoundInfo } from '../wire/admin-messages.js';
import type { RoundRow } from './report.js';

/** The report row of a finished round (completed or failed). */
export function roundRow(r: RoundInfo, privacy: boolean): RoundRow {
  const m = r.metrics;
  const num = (v: number | undefined): number => (v === undefined || !Number.isFinite(v) ? Number.NaN : v);
  return {
    round: r.round,
    clientsIn: r.accepted,
    clientsSampled: r.sampled,
    meanLocalLoss: num(m.mean_local_loss),
    accuracy: num(m.eval_accuracy),
    testLoss: num(m.eval_loss),
    bytesUp: m.bytes_up ?? 0,
    bytesDown: m.bytes_down ?? 0,
    seconds: r.finishedAtMs > 0 && r.startedAtMs > 0 ? (r.finishedAtMs - r.startedAtMs) / 1000 : Number.NaN,
    ...(privacy ? { epsilon: r.epsilonAfter > 0 ? r.epsilonAfter : num(m.epsilon_spent) } : {}),
    status: r.state === 'ROUND_STATE_COMPLETED' ? 'aggregated' : 'failed',
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(2)} MiB`;
}

function fixed(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '—';
}

function percent(v: number): string {
  return Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '—';
}

const COLUMNS: readonly (readonly [string, number])[] = [
  ['round', 5],
  ['clients in', 10],
  ['mean local loss', 15],
  ['test accuracy', 13],
  ['bytes up', 10],
  ['bytes down', 10],
  ['seconds', 7],
];

function line(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
}

/** The header line and a rule under it. */
export function tableHeader(privacy: boolean): string {
  const cols = privacy ? [...COLUMNS, ['ε spent', 8] as const] : COLUMNS;
  const widths = cols.map(([, w]) => w);
  const head = line(cols.map(([n]) => n), widths);
  return `${head}\n${'-'.repeat(head.length)}`;
}

/** One round as a table line; a failed round says so in the accuracy column. */
export function tableLine(row: RoundRow, privacy: boolean): string {
  const cols = privacy ? [...COLUMNS, ['ε spent', 8] as const] : COLUMNS;
  const cells = [
    String(row.round),
    `${row.clientsIn}/${row.clientsSampled}`,
    fixed(row.meanLocalLoss, 4),
    row.status === 'failed' ? 'failed' : percent(row.accuracy),
    formatBytes(row.bytesUp),
    formatBytes(row.bytesDown),
    fixed(row.seconds, 1),
    ...(privacy ? [fixed(row.epsilon ?? Number.NaN, 3)] : []),
  ];
  return line(cells, cols.map(([, w]) => w));
}

/** The summary the report shows and the demo prints last. */
export function summarize(initialAccuracy: number, rows: readonly RoundRow[], totalSeconds: number): Record<string, string | number> {
  const done = rows.filter((r) => r.status === 'aggregated');
  const last = done.at(-1);
  const best = done.reduce((b, r) => (Number.isFinite(r.accuracy) && r.accuracy > b ? r.accuracy : b), Number.NEGATIVE_INFINITY);
  const out: Record<string, string | number> = {
    'initial accuracy': percent(initialAccuracy),
    'final accuracy': last ? percent(last.accuracy) : '—',
    'best accuracy': Number.isFinite(best) ? percent(best) : '—',
    'rounds aggregated': `${done.length} of ${rows.length}`,
    'bytes up (total)': formatBytes(rows.reduce((s, r) => s + r.bytesUp, 0)),
    'bytes down (total)': formatBytes(rows.reduce((s, r) => s + r.bytesDown, 0)),
    'wall time': `${totalSeconds.toFixed(0)} s`,
  };
  const eps = last?.epsilon;
  if (eps !== undefined) out['ε spent'] = fixed(eps, 3);
  return out;
}
