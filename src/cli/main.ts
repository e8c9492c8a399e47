#!/usr/bin/env node
/** `lethe`: the one entry point. Finds the longest command path matching argv and runs it. */
import { memoryTuningMissing, runWithMemoryTuning } from '../memory-tuning.js';
import { UsageError } from './command.js';
import { COMMANDS, findCommand } from './registry.js';

async function help(): Promise<string> {
  const commands = await Promise.all(COMMANDS.map((c) => c.load()));
  const rows = commands.map((c) => `  lethe ${c.path.join(' ').padEnd(22)} ${c.summary}\n  ${' '.repeat(29)}${c.usage}`);
  return `usage: lethe <command> [flags]\n\n${rows.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(await help());
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    process.stderr.write(`lethe: unknown command "${argv.join(' ')}"\n\n${await help()}`);
    return 2;
  }
  const command = await found.entry.load();
  if (found.rest.includes('--help') || found.rest.includes('-h')) {
    process.stdout.write(`lethe ${command.path.join(' ')}: ${command.summary}\n  usage: ${command.usage}\n`);
    return 0;
  }
  const script = process.argv[1];
  if (command.memoryTuning === 'restart' && script && memoryTuningMissing()) return runWithMemoryTuning(script, argv);
  try {
    return await command.run(found.rest);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`lethe ${command.path.join(' ')}: ${(err as Error).message}\n  usage: ${command.usage}\n`);
      return 2;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`lethe ${command.path.join(' ')}: ${e.name}${e.code ? ` [${e.code}]` : ''}: ${e.message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
