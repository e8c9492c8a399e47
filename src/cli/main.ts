#!/usr/bin/env node
/** `lethe`: the one entry point. Finds the longest command path matching argv and runs it. */
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { benchCommand } from './commands/bench.js';
import { clientEnrollCommand, clientRunCommand } from './commands/client.js';
import { clientsCommand } from './commands/clients.js';
import { coordinatorStartCommand } from './commands/coordinator.js';
import { demoCommand } from './commands/demo.js';
import { doctorCommand } from './commands/doctor.js';
import { logitsCommand } from './commands/logits.js';
import { predictCommand } from './commands/predict.js';
import { pretrainCommand } from './commands/pretrain.js';
import { privacyEpsilonCommand, privacySigmaCommand } from './commands/privacy.js';
import { runsCreateCommand, runsRaiseBudgetCommand } from './commands/runs.js';
import { statusCommand } from './commands/status.js';
import { tokenCreateCommand } from './commands/token.js';
import { trainCommand } from './commands/train.js';
import { unlearnListCommand, unlearnStatusCommand, unlearnSubmitCommand } from './commands/unlearn.js';
import { wireBenchCommand } from './commands/wire.js';

// Grouped by the user's three everyday actions first (coordinator, clients, unlearning), then tools.
const COMMANDS: readonly Command[] = [
  demoCommand,
  coordinatorStartCommand,
  tokenCreateCommand,
  runsCreateCommand,
  runsRaiseBudgetCommand,
  statusCommand,
  clientsCommand,
  clientEnrollCommand,
  clientRunCommand,
  unlearnSubmitCommand,
  unlearnStatusCommand,
  unlearnListCommand,
  predictCommand,
  trainCommand,
  pretrainCommand,
  logitsCommand,
  privacyEpsilonCommand,
  privacySigmaCommand,
  doctorCommand,
  benchCommand,
  wireBenchCommand,
];

function help(): string {
  const rows = COMMANDS.map((c) => `  lethe ${c.path.join(' ').padEnd(22)} ${c.summary}\n  ${' '.repeat(29)}${c.usage}`);
  return `usage: lethe <command> [flags]\n\n${rows.join('\n')}\n`;
}

function find(argv: readonly string[]): { command: Command; rest: string[] } | undefined {
  let best: Command | undefined;
  for (const c of COMMANDS) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best && { command: best, rest: argv.slice(best.path.length) };
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(help());
    return 0;
  }
  const found = find(argv);
  if (!found) {
    process.stderr.write(`lethe: unknown command "${argv.join(' ')}"\n\n${help()}`);
    return 2;
  }
  if (found.rest.includes('--help') || found.rest.includes('-h')) {
    process.stdout.write(`lethe ${found.command.path.join(' ')}: ${found.command.summary}\n  usage: ${found.command.usage}\n`);
    return 0;
  }
  try {
    return await found.command.run(found.rest);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`lethe ${found.command.path.join(' ')}: ${(err as Error).message}\n  usage: ${found.command.usage}\n`);
      return 2;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`lethe ${found.command.path.join(' ')}: ${e.name}${e.code ? ` [${e.code}]` : ''}: ${e.message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
