/** `lethe runs create` and `lethe runs raise-budget`: the operator's run management. */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ADMIN_FLAG_OPTIONS, ADMIN_FLAG_USAGE, adminTarget, connectAdmin } from '../../coordinator/admin-client.js';
import { parseRunConfig } from '../../coordinator/run-config.js';
import { callUnary } from '../../wire/services.js';
import { UsageError, numberFlag, type Command } from '../command.js';

/** The run config file's JSON, validated locally first so a typo is reported before anything is sent. */
export async function readRunConfigFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --config ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--config ${path} is not JSON: ${(err as Error).message}`);
  }
  parseRunConfig(json);
  return JSON.stringify(json);
}

export const runsCreateCommand: Command = {
  path: ['runs', 'create'],
  summary: 'create a federated run from a JSON run config',
  usage: `--config FILE [--json] ${ADMIN_FLAG_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...ADMIN_FLAG_OPTIONS, config: { type: 'string' }, json: { type: 'boolean' } } });
    if (!values.config) throw new UsageError('--config FILE is required');
    const extraJson = await readRunConfigFile(values.config);
    const conn = await connectAdmin(adminTarget(values));
    try {
      const run = await callUnary(conn.client, 'CreateRun', { extraJson }, conn.settings());
      if (values.json) process.stdout.write(`${JSON.stringify({ ...run, adapterSha256: run.adapterSha256.toString('hex') }, null, 2)}\n`);
      else process.stdout.write(`${run.runId}\n`);
      return 0;
    } finally {
      conn.close();
    }
  },
};

export const runsRaiseBudgetCommand: Command = {
  path: ['runs', 'raise-budget'],
  summary: "raise a run's privacy budget (audited); a budget-exhausted run resumes",
  usage: `--run ID --epsilon X --reason TEXT ${ADMIN_FLAG_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...ADMIN_FLAG_OPTIONS, run: { type: 'string' }, epsilon: { type: 'string' }, reason: { type: 'string' } } });
    if (!values.run) throw new UsageError('--run ID is required');
    if (!values.reason) throw new UsageError('--reason is required: budget changes are audited');
    const epsilonBudget = numberFlag('epsilon', values.epsilon);
    const conn = await connectAdmin(adminTarget(values));
    try {
      const run = await callUnary(conn.client, 'RaiseBudget', { runId: values.run, epsilonBudget, reason: values.reason }, conn.settings());
      process.stdout.write(`run ${run.runId}: budget ε=${run.privacy?.epsilonBudget}, spent ε=${run.privacy?.epsilonSpent.toFixed(4)}, state ${run.state}\n`);
      return 0;
    } finally {
      conn.close();
    }
  },
};
