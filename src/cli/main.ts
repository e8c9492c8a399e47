#!/usr/bin/env node
/** `lethe`: the one entry point. Finds the longest command path matching argv and runs it. */
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { pretrainCommand } from './commands/pretrain.js';
import { privacyEpsilonCommand, privacySigmaCommand } from './commands/privacy.js';
import { wireBenchCommand } from './commands/wire.js';

const COMMANDS: readonly Command[] = [pretrainCommand, privacyEpsilonCommand, privacySigmaCommand, wireBenchCommand];

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
