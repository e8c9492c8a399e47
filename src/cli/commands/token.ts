/** `lethe token create`: mints a join token that lets clients enroll. */
import { parseArgs } from 'node:util';
import { ADMIN_FLAG_OPTIONS, ADMIN_FLAG_USAGE, adminTarget, connectAdmin } from '../../coordinator/admin-client.js';
import { callUnary } from '../../wire/services.js';
import { UsageError, numberFlag, type Command } from '../command.js';

const UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** "90", "90s", "15m", "1h", "2d" → seconds. */
export function parseTtl(value: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(value.trim());
  if (!m) throw new UsageError(`--ttl must be a duration like 90s, 15m, 1h or 2d, got "${value}"`);
  const seconds = Math.round(Number(m[1]) * UNITS[m[2] || 's']!);
  if (seconds < 1) throw new UsageError('--ttl must be at least one second');
  return seconds;
}

export const tokenCreateCommand: Command = {
  path: ['token', 'create'],
  summary: 'mint a join token for enrolling clients',
  usage: `--ttl 1h --uses N [--note TEXT] ${ADMIN_FLAG_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...ADMIN_FLAG_OPTIONS, ttl: { type: 'string' }, uses: { type: 'string' }, note: { type: 'string' } } });
    const ttlSeconds = parseTtl(values.ttl ?? '1h');
    const uses = numberFlag('uses', values.uses, 1);
    if (!Number.isInteger(uses) || uses < 1) throw new UsageError(`--uses must be a positive integer, got ${values.uses}`);
    const conn = await connectAdmin(adminTarget(values));
    try {
      const token = await callUnary(conn.client, 'CreateJoinToken', { ttlSeconds, uses, note: values.note ?? '' }, conn.settings());
      process.stdout.write(`${token.token}\n`);
      process.stderr.write(`valid for ${uses} enrollment(s) until ${new Date(token.expiresAtMs).toISOString()}\n`);
      return 0;
    } finally {
      conn.close();
    }
  },
};
