/**
 * `lethe demo` (`npm run demo`): a coordinator and N client processes on 127.0.0.1 train a LoRA adapter of the tiny
 * GPT-2 on SpamAssassin, split non-IID across the clients; a live table per round, then a summary and an HTML report.
 *
 *   lethe demo                          # 8 clients, 8 rounds, Dirichlet α = 0.5
 *   lethe demo --clients 4 --rounds 5 --privacy
 *   lethe demo --unlearn                # then client 0 forgets a group of mails it alone holds: before/after
 *
 * Ctrl-C stops the demo early (the report covers the rounds done); every child process is stopped either way.
 */
import { join } from 'node:path';
import { DEFAULT_DEMO, type DemoOptions } from '../../demo/config.js';
import { runDemo } from '../../demo/demo.js';
import { unlearnStage } from '../../demo/unlearn.js';
import { numberFlag, UsageError, type Command } from '../command.js';
import { intFlag, parseFlags, resolveDataDir, startBackend, str } from '../flags.js';
import { pretrainProgress } from './pretrain.js';

/** Parses the demo's flags into options (defaults: DEFAULT_DEMO). */
export function demoOptions(argv: string[]): DemoOptions {
  const flags = parseFlags(argv, {
    clients: { type: 'string' },
    rounds: { type: 'string' },
    alpha: { type: 'string' },
    'data-dir': { type: 'string' },
    port: { type: 'string' },
    privacy: { type: 'boolean' },
    unlearn: { type: 'boolean' },
    backend: { type: 'string' },
    'base-model': { type: 'string' },
    'seq-len': { type: 'string' },
    'local-steps': { type: 'string' },
    'batch-size': { type: 'string' },
    lr: { type: 'string' },
    'round-deadline': { type: 'string' },
  });
  const alpha = numberFlag('alpha', str(flags.alpha), DEFAULT_DEMO.alpha);
  if (!(alpha > 0)) throw new UsageError(`--alpha must be positive, got ${alpha}`);
  const port = numberFlag('port', str(flags.port), DEFAULT_DEMO.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, got ${port}`);
  const lr = numberFlag('lr', str(flags.lr), DEFAULT_DEMO.lr);
  if (!(lr > 0)) throw new UsageError(`--lr must be positive, got ${lr}`);
  const clients = intFlag('clients', flags.clients, DEFAULT_DEMO.clients);
  if (clients < 2) throw new UsageError('--clients must be at least 2: federation needs more than one client');
  return Object.freeze({
    ...DEFAULT_DEMO,
    clients,
    rounds: intFlag('rounds', flags.rounds, DEFAULT_DEMO.rounds),
    alpha,
    dataDir: str(flags['data-dir']) ?? join(resolveDataDir(undefined), 'demo'),
    port,
    privacy: flags.privacy === true,
    unlearn: flags.unlearn === true,
    backend: str(flags.backend),
    baseModel: str(flags['base-model']) ?? DEFAULT_DEMO.baseModel,
    seqLen: intFlag('seq-len', flags['seq-len'], DEFAULT_DEMO.seqLen),
    localSteps: intFlag('local-steps', flags['local-steps'], DEFAULT_DEMO.localSteps),
    batchSize: intFlag('batch-size', flags['batch-size'], DEFAULT_DEMO.batchSize),
    lr,
    roundDeadlineS: intFlag('round-deadline', flags['round-deadline'], DEFAULT_DEMO.roundDeadlineS),
  });
}

export const demoCommand: Command = {
  path: ['demo'],
  summary: 'federated LoRA fine-tuning with a coordinator and N client processes on this machine',
  usage:
    '[--clients 8] [--rounds 10] [--alpha 0.5] [--data-dir DIR] [--port 0] [--privacy] [--unlearn] [--backend B] ' +
    '[--base-model builtin:tiny|DIR] [--seq-len 128] [--local-steps 25] [--batch-size 16] [--lr 5e-3] [--round-deadline 180]',
  async run(argv) {
    const options = demoOptions(argv);
    const script = process.argv[1];
    if (!script) throw new UsageError('cannot tell which lethe entry point to start the child processes with');
    const backend = await startBackend(options.backend);
    const controller = new AbortController();
    const onSignal = (): void => {
      if (controller.signal.aborted) process.exit(130); // second Ctrl-C: the 'exit' handler kills the children
      process.stderr.write('\nstopping the demo (Ctrl-C again to quit at once)\n');
      controller.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const progress = pretrainProgress();
    try {
      // Children use the backend selected here, so nine processes do not each probe the hardware again.
      const result = await runDemo({ ...options, backend: options.backend ?? backend.backend }, {
        out: (text) => process.stdout.write(text),
        entry: { executable: process.execPath, script },
        onPretrainStep: progress.onStep,
        signal: controller.signal,
        backend: backend.backend,
        ...(options.unlearn ? { stage: unlearnStage(options) } : {}),
      });
      progress.done();
      if (result.aborted) return 130;
      return result.run?.state === 'RUN_STATE_COMPLETED' ? 0 : 1;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
