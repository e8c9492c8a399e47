/** `lethe status`: the coordinator, its runs, each run's current round and the privacy spent. */
import { parseArgs } from 'node:util';
import { ADMIN_FLAG_OPTIONS, ADMIN_FLAG_USAGE, adminTarget, connectAdmin } from '../../coordinator/admin-client.js';
import type { CoordinatorStatus, RoundInfo, Run } from '../../wire/admin-messages.js';
import { callUnary } from '../../wire/services.js';
import type { Command } from '../command.js';

interface RunStatus {
  readonly run: Run;
  /** The most recent round, if any. */
  readonly round: RoundInfo | undefined;
}

const lower = (s: string, prefix: string): string => s.replace(prefix, '').toLowerCase();

function roundLine(r: RoundInfo | undefined, now: number): string {
  if (!r) return '-';
  const state = lower(r.state, 'ROUND_STATE_');
  const base = `round ${r.round} ${state}: ${r.accepted}/${r.sampled} updates`;
  const acc = r.metrics.eval_accuracy;
  if (state === 'completed') return `${base}${acc === undefined ? '' : `, eval accuracy ${(acc * 100).toFixed(1)}%`}`;
  if (state === 'failed') return `${base}, failed`;
  const deadline = typeof r.metrics.deadline_ms === 'number' ? r.metrics.deadline_ms : undefined;
  return deadline === undefined ? base : `${base}, deadline in ${Math.max(0, Math.round((deadline - now) / 1000))}s`;
}

export function formatStatus(status: CoordinatorStatus, runs: readonly RunStatus[], now: number): string {
  const up = Math.round((status.serverTimeMs - status.startedAtMs) / 1000);
  const head =
    `coordinator ${status.coordinatorId} (${status.version}), up ${up}s; clients: ${status.clientsEnrolled} enrolled, ` +
    `${status.clientsOnline} online, ${status.clientsRevoked} revoked; runs: ${status.runsActive} active of ${status.runsTotal}`;
  const rows = runs.map(({ run, round }) => [
    run.runId,
    run.name,
    lower(run.state, 'RUN_STATE_'),
    `${run.currentRound}/${run.rounds}`,
    run.privacy ? `${run.privacy.epsilonSpent.toFixed(3)}/${run.privacy.epsilonBudget} (δ=${run.privacy.delta})` : '-',
    roundLine(round, now) + (run.message ? ` — ${run.message}` : ''),
  ]);
  if (rows.length === 0) return head;
  const header = ['RUN', 'NAME', 'STATE', 'ROUND', 'ε SPENT/BUDGET', 'CURRENT ROUND'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const table = [header, ...rows].map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd());
  return [head, '', ...table].join('\n');
}

export const statusCommand: Command = {
  path: ['status'],
  summary: "show the coordinator's runs, current rounds and privacy spent",
  usage: `[--json] ${ADMIN_FLAG_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...ADMIN_FLAG_OPTIONS, json: { type: 'boolean' } } });
    const conn = await connectAdmin(adminTarget(values));
    try {
      const status = await callUnary(conn.client, 'Status', {}, conn.settings());
      const { runs } = await callUnary(conn.client, 'ListRuns', { pageSize: 50, pageToken: '' }, conn.settings());
      const withRounds: RunStatus[] = await Promise.all(
        runs.map(async (run) => ({ run, round: (await callUnary(conn.client, 'ListRounds', { runId: run.runId, pageSize: 1, pageToken: '' }, conn.settings())).rounds[0] })),
      );
      if (values.json) {
        const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
        const json = {
          coordinator: status,
          runs: withRounds.map(({ run, round }) => ({
            ...run,
            config: JSON.parse(run.configJson) as unknown,
            configJson: undefined,
            adapterSha256: hex(run.adapterSha256),
            currentRoundInfo: round ? { ...round, adapterSha256: hex(round.adapterSha256) } : null,
          })),
        };
        process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      } else {
        process.stdout.write(`${formatStatus(status, withRounds, Date.now())}\n`);
      }
      return 0;
    } finally {
      conn.close();
    }
  },
};
