/**
 * Every `lethe` sub-command: the words that select it and how to load it. Modules load only when their command runs
 * (`lethe privacy epsilon` should not pay for TensorFlow.js and gRPC); `lethe help` loads them all for their summaries.
 * Grouped by the user's three everyday actions first (coordinator, clients, unlearning), then tools.
 */
import type { Command } from './command.js';

export interface CommandEntry {
  readonly path: readonly string[];
  readonly load: () => Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { path: ['demo'], load: async () => (await import('./commands/demo.js')).demoCommand },
  { path: ['coordinator', 'start'], load: async () => (await import('./commands/coordinator.js')).coordinatorStartCommand },
  { path: ['token', 'create'], load: async () => (await import('./commands/token.js')).tokenCreateCommand },
  { path: ['runs', 'create'], load: async () => (await import('./commands/runs.js')).runsCreateCommand },
  { path: ['runs', 'raise-budget'], load: async () => (await import('./commands/runs.js')).runsRaiseBudgetCommand },
  { path: ['status'], load: async () => (await import('./commands/status.js')).statusCommand },
  { path: ['clients'], load: async () => (await import('./commands/clients.js')).clientsCommand },
  { path: ['client', 'enroll'], load: async () => (await import('./commands/client.js')).clientEnrollCommand },
  { path: ['client', 'run'], load: async () => (await import('./commands/client.js')).clientRunCommand },
  { path: ['unlearn', 'submit'], load: async () => (await import('./commands/unlearn.js')).unlearnSubmitCommand },
  { path: ['unlearn', 'status'], load: async () => (await import('./commands/unlearn.js')).unlearnStatusCommand },
  { path: ['unlearn', 'list'], load: async () => (await import('./commands/unlearn.js')).unlearnListCommand },
  { path: ['predict'], load: async () => (await import('./commands/predict.js')).predictCommand },
  { path: ['train'], load: async () => (await import('./commands/train.js')).trainCommand },
  { path: ['pretrain'], load: async () => (await import('./commands/pretrain.js')).pretrainCommand },
  { path: ['logits'], load: async () => (await import('./commands/logits.js')).logitsCommand },
  { path: ['privacy', 'epsilon'], load: async () => (await import('./commands/privacy.js')).privacyEpsilonCommand },
  { path: ['privacy', 'sigma'], load: async () => (await import('./commands/privacy.js')).privacySigmaCommand },
  { path: ['doctor'], load: async () => (await import('./commands/doctor.js')).doctorCommand },
  { path: ['bench'], load: async () => (await import('./commands/bench.js')).benchCommand },
  { path: ['wire', 'bench'], load: async () => (await import('./commands/wire.js')).wireBenchCommand },
];

/** The entry whose path is the longest prefix of argv, and the arguments after it. */
export function findCommand(argv: readonly string[]): { entry: CommandEntry; rest: string[] } | undefined {
  let best: CommandEntry | undefined;
  for (const c of COMMANDS) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best && { entry: best, rest: argv.slice(best.path.length) };
}
