/** `lethe clients`: the enrolled clients, live or not. */
import { parseArgs } from 'node:util';
import { ADMIN_FLAG_OPTIONS, ADMIN_FLAG_USAGE, adminTarget, connectAdmin } from '../../coordinator/admin-client.js';
import type { ClientInfo } from '../../wire/admin-messages.js';
import { callUnary } from '../../wire/services.js';
import type { Command } from '../command.js';

function ago(ms: number, now: number): string {
  if (ms === 0) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function formatClients(clients: readonly ClientInfo[], now: number): string {
  const rows = clients.map((c) => {
    const state = c.revoked ? 'revoked' : c.online ? 'online' : 'offline';
    const caps = c.capabilities;
    const modes = (caps?.modes ?? []).map((m) => m.replace('TRAINING_MODE_', '').toLowerCase()).join(',') || '-';
    const mem = caps && caps.memoryBudgetBytes > 0 ? `${Math.round(caps.memoryBudgetBytes / 2 ** 20)}MiB` : '-';
    return [c.clientId, c.name || '-', state, ago(c.lastSeenMs, now), caps?.backend || '-', mem, modes];
  });
  const header = ['CLIENT', 'NAME', 'STATE', 'LAST SEEN', 'BACKEND', 'MEMORY', 'MODES'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export const clientsCommand: Command = {
  path: ['clients'],
  summary: 'list enrolled clients',
  usage: `[--json] [--all] ${ADMIN_FLAG_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...ADMIN_FLAG_OPTIONS, json: { type: 'boolean' }, all: { type: 'boolean' } } });
    const conn = await connectAdmin(adminTarget(values));
    try {
      const clients: ClientInfo[] = [];
      let pageToken = '';
      do {
        const page = await callUnary(conn.client, 'ListClients', { includeRevoked: values.all === true, pageSize: 1000, pageToken }, conn.settings());
        clients.push(...page.clients);
        pageToken = page.nextPageToken;
      } while (pageToken !== '');
      if (values.json) {
        const plain = clients.map((c) => ({ ...c, publicKey: Buffer.from(c.publicKey).toString('hex') }));
        process.stdout.write(`${JSON.stringify(plain, null, 2)}\n`);
      } else {
        process.stdout.write(`${formatClients(clients, Date.now())}\n`);
      }
      return 0;
    } finally {
      conn.close();
    }
  },
};
