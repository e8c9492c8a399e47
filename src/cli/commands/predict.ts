/**
 * `lethe predict`: classifies a text with a run's current global adapter (InferenceService.Predict), presenting the
 * admin credential like the other operator commands.
 *
 *   lethe predict --run run_... --text "Subject: cheap meds, no prescription" --data-dir ~/.lethe/coordinator
 *   lethe predict --coordinator 10.0.0.5:7070 --admin-token T --run run_... --text "..." --explain --json
 */
import { parseArgs } from 'node:util';
import { Metadata } from '@grpc/grpc-js';
import { readAdminToken } from '../../auth/admin-token.js';
import { ADMIN_FLAG_OPTIONS, ADMIN_FLAG_USAGE, adminTarget } from '../../coordinator/admin-client.js';
import type { PredictResponse } from '../../wire/admin-messages.js';
import { loadLetheProto } from '../../wire/proto.js';
import { callUnary, createClient } from '../../wire/services.js';
import { channelCredentials } from '../../wire/tls.js';
import { UsageError, type Command } from '../command.js';

/** The prediction as text: the winning label, every label's probability, and the unlearning gates with --explain. */
export function formatPrediction(res: PredictResponse, explain: boolean): string {
  const lines = [`${res.predictedLabel} (${(100 * (res.probabilities[res.predictedIndex]?.probability ?? 0)).toFixed(1)}%)`];
  for (const p of res.probabilities) lines.push(`  ${p.label.padEnd(12)} ${(100 * p.probability).toFixed(2)}%`);
  lines.push(`  ${res.numTokens} tokens${res.truncated ? ' (input truncated to the run\'s seq_len)' : ''}, adapter ${Buffer.from(res.adapterSha256).toString('hex').slice(0, 16)}…`);
  if (explain) {
    if (res.gates.length === 0) lines.push('  no unlearning gates apply to this run');
    for (const g of res.gates) lines.push(`  gate ${g.requestId}: weight ${g.weight.toFixed(3)}, OOD score ${g.score.toFixed(3)}`);
  }
  return lines.join('\n');
}

export const predictCommand: Command = {
  path: ['predict'],
  summary: "classify a text with a run's global adapter",
  usage: `--run RUN --text TEXT [--explain] [--json] ${ADMIN_FLAG_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { ...ADMIN_FLAG_OPTIONS, run: { type: 'string' }, text: { type: 'string' }, explain: { type: 'boolean' }, json: { type: 'boolean' } },
    });
    if (!values.run) throw new UsageError('--run RUN is required (list runs with `lethe status`)');
    if (values.text === undefined) throw new UsageError('--text is required');
    const target = adminTarget(values);
    let token = target.adminToken;
    if (token === undefined) {
      if (target.dataDir === undefined) throw new UsageError("give --data-dir (the coordinator's, to read admin.token) or --admin-token");
      token = await readAdminToken(target.dataDir);
    }
    const client = createClient(loadLetheProto(), 'inference', target.coordinator ?? '127.0.0.1:7070', channelCredentials(target.tls));
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    try {
      const explain = values.explain === true;
      const res = await callUnary(client, 'Predict', { runId: values.run, text: values.text, explain }, { metadata, deadline: Date.now() + 60_000 });
      if (values.json) process.stdout.write(`${JSON.stringify({ ...res, adapterSha256: Buffer.from(res.adapterSha256).toString('hex') })}\n`);
      else process.stdout.write(`${formatPrediction(res, explain)}\n`);
      return 0;
    } finally {
      client.close();
    }
  },
};
