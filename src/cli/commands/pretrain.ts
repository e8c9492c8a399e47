/**
 * `lethe pretrain`: trains (or verifies and reuses) the built-in tiny byte-level GPT-2 base under
 * <data-dir>/models/tiny-gpt2, with a progress bar on stderr.
 *
 *   lethe pretrain                      # first run trains (~5 min on 2 cores), later runs verify the checksum
 *   lethe pretrain --steps 50 --force   # a quick, weaker base
 *   lethe pretrain --json               # one JSON line with loss, held-out perplexity, tokens/s
 *
 * Also home to the pieces every training command shares: the data directory, backend start-up and the progress bar.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type BackendChoice, backendFromEnv, initBackend, parseBackendName } from '../../backend/backend.js';
import { installWasmTransposedMatMul } from '../../backend/wasm-matmul.js';
import { type PretrainProgress, DEFAULT_PRETRAIN, ensurePretrainedBase } from '../../train/pretrain.js';
import { type Command, UsageError, numberFlag } from '../command.js';

/** --data-dir, else $LETHE_HOME, else ~/.lethe. */
export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.LETHE_HOME ?? join(homedir(), '.lethe');
}

/** Starts the backend named by --backend or LETHE_BACKEND (else the best available) with Lethe's kernel fixes. */
export async function startBackend(flag: string | undefined): Promise<BackendChoice> {
  const choice = await initBackend(flag ? parseBackendName(flag) : backendFromEnv());
  installWasmTransposedMatMul();
  return choice;
}

export type Flags = Record<string, string | boolean | undefined>;

export function parseFlags(argv: string[], options: NonNullable<ParseArgsConfig['options']>): Flags {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Flags;
  } catch (err) {
    throw new UsageError((err as Error).message, { cause: err });
  }
}

export function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A positive integer flag, or `fallback`. */
export function intFlag(name: string, v: string | boolean | undefined, fallback: number): number {
  const n = numberFlag(name, str(v), fallback);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got ${str(v)}`);
  return n;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** One progress line: bar, step, loss, throughput, ETA. Pure; exported for tests. */
export function progressLine(label: string, p: { step: number; steps: number; loss: number; elapsedSeconds: number; rate?: string }): string {
  const width = 24;
  const filled = Math.round((p.step / p.steps) * width);
  const eta = (p.elapsedSeconds / p.step) * (p.steps - p.step);
  return `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.step}/${p.steps} loss ${p.loss.toFixed(4)}${p.rate ? ` ${p.rate}` : ''} ETA ${duration(eta)}`;
}

/**
 * A progress reporter on stderr: redrawn in place on a terminal; otherwise one line per ~10% so logs stay short.
 * `done()` ends the line.
 */
export function progressReporter(label: string, stream: NodeJS.WriteStream = process.stderr): {
  update(p: { step: number; steps: number; loss: number; elapsedSeconds: number; rate?: string }): void;
  done(): void;
} {
  let drawn = false;
  let lastDecile = -1;
  return {
    update(p) {
      const line = progressLine(label, p);
      if (stream.isTTY) {
        stream.write(`\r${line}\x1b[K`);
        drawn = true;
        return;
      }
      const decile = Math.floor((p.step / p.steps) * 10);
      if (decile !== lastDecile || p.step === p.steps) {
        lastDecile = decile;
        stream.write(`${line}\n`);
      }
    },
    done() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}

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
