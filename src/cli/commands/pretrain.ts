/**
 * `lethe pretrain`: trains (or verifies and reuses) the built-in tiny byte-level GPT-2 base under
 * <data-dir>/models/tiny-gpt2, with a progress bar on stderr.
 *
 *   lethe pretrain                      # first run trains (~5 min on 2 cores), later runs verify the checksum
 *   lethe pretrain --steps 50 --force   # a quick, weaker base
 *   lethe pretrain --steps 8000 --force # the shipped base's recipe (models/tiny-gpt2): ~17 min on one wasm core
 *   lethe pretrain --json               # one JSON line with loss, held-out perplexity, tokens/s
 */
import { DEFAULT_PRETRAIN, type PretrainProgress, ensurePretrainedBase } from '../../train/pretrain.js';
import { type Command, UsageError, numberFlag } from '../command.js';
import { intFlag, parseFlags, resolveDataDir, startBackend, str } from '../flags.js';
import { duration, progressReporter } from '../progress.js';

/** Progress callback for pretraining (tokens/s as the rate). */
export function pretrainProgress(stream: NodeJS.WriteStream = process.stderr): { onStep: (p: PretrainProgress) => void; done(): void } {
  const bar = progressReporter('pretrain', stream);
  return {
    onStep: (p) => bar.update({ ...p, rate: `${Math.round(p.tokensPerSecond)} tok/s` }),
    done: () => bar.done(),
  };
}

export const pretrainCommand: Command = {
  path: ['pretrain'],
  summary: 'train (or verify and reuse) the built-in tiny GPT-2 base model',
  usage: `[--data-dir DIR] [--steps N (default ${DEFAULT_PRETRAIN.steps})] [--backend tensorflow|wasm|cpu] [--force] [--json]`,
  async run(argv) {
    const flags = parseFlags(argv, {
      'data-dir': { type: 'string' },
      steps: { type: 'string' },
      backend: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    const steps = intFlag('steps', flags.steps, DEFAULT_PRETRAIN.steps);
    const dataDir = resolveDataDir(str(flags['data-dir']));
    const backend = await startBackend(str(flags.backend));
    const progress = pretrainProgress();
    const base = await ensurePretrainedBase(dataDir, { config: { steps }, force: flags.force === true, onStep: progress.onStep });
    progress.done();
    const m = base.manifest;
    if (flags.json) {
      const losses = base.result?.losses;
      process.stdout.write(
        `${JSON.stringify({
          dir: base.dir,
          trained: base.trained,
          backend: backend.backend,
          sha256: m.sha256,
          steps: m.steps,
          loss_after: m.lossAfter,
          heldout_perplexity: m.heldOutPerplexity,
          tokens_per_second: m.tokensPerSecond,
          seconds: m.seconds,
          ...(losses ? { loss_curve: losses.filter((_, i) => i % Math.max(1, Math.floor(losses.length / 20)) === 0 || i === losses.length - 1) } : {}),
        })}\n`,
      );
    } else {
      const verb = base.trained ? `trained in ${duration(m.seconds)} on ${backend.backend}` : 'verified and reused';
      process.stdout.write(
        `tiny-gpt2 ${verb}: ${base.dir}\n` +
          `  ${m.steps} steps, final train loss ${m.lossAfter.toFixed(4)} nats/byte, held-out perplexity ` +
          `${m.heldOutPerplexity.toFixed(3)}, ${Math.round(m.tokensPerSecond)} tokens/s, sha256 ${m.sha256.slice(0, 16)}…\n`,
      );
      if (!base.trained && flags.steps !== undefined && steps !== m.steps) {
        process.stderr.write(`note: the stored base was trained for ${m.steps} steps; pass --force to retrain with --steps ${steps}\n`);
      }
    }
    return 0;
  },
};
