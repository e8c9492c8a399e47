/**
 * `lethe unlearn`: O3 unlearning requests (AdminService SubmitUnlearning / GetUnlearning / ListUnlearning; with
 * --as-client, FleetService.SubmitUnlearning signed with the enrolled client's own key, for its own data).
 *
 *   lethe unlearn submit --run RUN --client ID (--label L | --group G | --match REGEX) --reason "…" --data-dir DIR
 *   lethe unlearn submit --as-client --run RUN (--label L | --group G | --match REGEX) --reason "…" [--data-dir CLIENT_DIR]
 *   lethe unlearn status REQ [--json] --data-dir DIR
 *   lethe unlearn list [--run RUN] [--json] --data-dir DIR
 */
import { parseArgs } from 'node:util';
import { ADMIN_FLAG_OPTIONS, ADMIN_FLAG_USAGE, adminTarget, connectAdmin } from '../../coordinator/admin-client.js';
import type { UnlearningRequest } from '../../wire/admin-messages.js';
import { callUnary } from '../../wire/services.js';
import { submitOwnUnlearning } from '../../client/unlearn-request.js';
import { UsageError, type Command } from '../command.js';
import { clientDataDir } from './client.js';

const STATE_WORD: Readonly<Record<string, string>> = Object.freeze({
  UNLEARNING_STATE_PENDING: 'queued',
  UNLEARNING_STATE_RUNNING: 'running',
  UNLEARNING_STATE_COMPLETED: 'active',
  UNLEARNING_STATE_FAILED: 'failed',
});

function jsonOf(r: UnlearningRequest): unknown {
  return { ...r, adapterSha256: Buffer.from(r.adapterSha256).toString('hex') };
}

/** One request as text: id, run, index, state, selector, clients, and the outcome. */
export function formatUnlearning(r: UnlearningRequest): string {
  const f = r.forget;
  const what = [f?.label && `label=${f.label}`, f?.group && `group=${f.group}`, f?.match && `match=/${f.match}/`, f?.query && `query=${f.query}`, f?.exampleIds.length ? `${f.exampleIds.length} example id(s)` : '']
    .filter(Boolean)
    .join(' ');
  const lines = [`${r.requestId}  run ${r.runId}  #${r.index}  ${STATE_WORD[r.state] ?? r.state}`, `  forget ${what} on ${r.clientIds.join(', ')} (${r.targetPolicy})${r.reason ? `: ${r.reason}` : ''}`];
  if (r.state === 'UNLEARNING_STATE_FAILED') lines.push(`  failed: ${r.message}`);
  const metrics = Object.entries(r.metrics).map(([k, v]) => `${k}=${Number(v.toPrecision(4))}`);
  if (metrics.length > 0) lines.push(`  ${metrics.join(' ')}`);
  return lines.join('\n');
}

async function withAdmin<T>(values: Readonly<Record<string, unknown>>, fn: (c: Awaited<ReturnType<typeof connectAdmin>>) => Promise<T>): Promise<T> {
  const conn = await connectAdmin(adminTarget(values));
  try {
    return await fn(conn);
  } finally {
    conn.close();
  }
}

export const unlearnSubmitCommand: Command = {
  path: ['unlearn', 'submit'],
  summary: 'ask the client holding some data to unlearn it (O3); --as-client: the enrolled client asks for its own data',
  usage:
    `--run RUN (--label L | --group G | --match REGEX) --reason TEXT [--policy P] [--json] ` +
    `(--client ID ${ADMIN_FLAG_USAGE} | --as-client [--data-dir CLIENT_DIR] [--coordinator HOST:PORT])`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        ...ADMIN_FLAG_OPTIONS,
        run: { type: 'string' },
        client: { type: 'string', multiple: true },
        'as-client': { type: 'boolean' },
        label: { type: 'string' },
        group: { type: 'string' },
        match: { type: 'string' },
        reason: { type: 'string' },
        policy: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
    const asClient = values['as-client'] === true;
    if (!values.run) throw new UsageError('--run RUN is required');
    if (asClient && values.client?.length) throw new UsageError('--as-client asks for the signing client\'s own data: drop --client');
    if (asClient && values['admin-token']) throw new UsageError('--as-client signs with the client key in --data-dir: drop --admin-token');
    if (!asClient && !values.client?.length) throw new UsageError('--client ID is required (the client holding the data; list them with `lethe clients`), or --as-client');
    if (!values.label && !values.group && !values.match) throw new UsageError('say what to forget: --label L, --group G or --match REGEX');
    if (!values.reason) throw new UsageError('--reason is required: unlearning requests are audited');
    const forget = { label: values.label ?? '', group: values.group ?? '', match: values.match ?? '' };
    const common = { runId: values.run, forget, targetPolicy: values.policy ?? '', reason: values.reason };
    const r = asClient
      ? await submitOwnUnlearning(common, { dataDir: clientDataDir(values['data-dir']), ...(values.coordinator ? { coordinator: values.coordinator } : {}) })
      : await withAdmin(values, (c) => callUnary(c.client, 'SubmitUnlearning', { ...common, clientIds: values.client! }, c.settings()));
    process.stdout.write(values.json ? `${JSON.stringify(jsonOf(r))}\n` : `${formatUnlearning(r)}\n`);
    return 0;
  },
};

export const unlearnStatusCommand: Command = {
  path: ['unlearn', 'status'],
  summary: 'show one unlearning request',
  usage: `REQ [--json] ${ADMIN_FLAG_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...ADMIN_FLAG_OPTIONS, json: { type: 'boolean' } } });
    const id = positionals[0];
    if (!id || positionals.length > 1) throw new UsageError('give one request id (list them with `lethe unlearn list`)');
    const r = await withAdmin(values, (c) => callUnary(c.client, 'GetUnlearning', { requestId: id }, c.settings()));
    process.stdout.write(values.json ? `${JSON.stringify(jsonOf(r))}\n` : `${formatUnlearning(r)}\n`);
    return 0;
  },
};

export const unlearnListCommand: Command = {
  path: ['unlearn', 'list'],
  summary: 'list unlearning requests, most recent first',
  usage: `[--run RUN] [--json] ${ADMIN_FLAG_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...ADMIN_FLAG_OPTIONS, run: { type: 'string' }, json: { type: 'boolean' } } });
    const all: UnlearningRequest[] = [];
    await withAdmin(values, async (c) => {
      let pageToken = '';
      do {
        const res = await callUnary(c.client, 'ListUnlearning', { runId: values.run ?? '', pageSize: 0, pageToken }, c.settings());
        all.push(...res.requests);
        pageToken = res.nextPageToken;
      } while (pageToken !== '');
    });
    if (values.json) process.stdout.write(`${JSON.stringify(all.map(jsonOf))}\n`);
    else process.stdout.write(all.length === 0 ? 'no unlearning requests\n' : `${all.map(formatUnlearning).join('\n')}\n`);
    return 0;
  },
};
