/**
 * `lethe privacy epsilon` and `lethe privacy sigma`: the RDP accountant from the command line, for planning a run.
 *
 *   lethe privacy epsilon --q 0.01 --sigma 1 --steps 10000 --delta 1e-5 --json   → {"epsilon":6.7127…,"order":4.1}
 *   lethe privacy sigma --q 0.01 --epsilon 3 --steps 10000 --delta 1e-5 --json   → {"sigma":…}
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type Command, UsageError, numberFlag } from '../command.js';
import { sigmaForEpsilon } from '../../privacy/calibrate.js';
import { InvalidPrivacyParameterError } from '../../privacy/errors.js';
import { epsilonOf } from '../../privacy/rdp.js';

const COMMON = { q: { type: 'string' }, steps: { type: 'string' }, delta: { type: 'string' }, json: { type: 'boolean' } } as const;

export const privacyEpsilonCommand: Command = {
  path: ['privacy', 'epsilon'],
  summary: 'ε spent by `steps` Poisson-subsampled Gaussian releases (RDP accountant)',
  usage: '--q RATE --sigma NOISE_MULTIPLIER --steps N --delta D [--json]',
  async run(argv) {
    const flags = parse(argv, { ...COMMON, sigma: { type: 'string' } });
    const q = rate(flags.q);
    const sigma = numberFlag('sigma', str(flags.sigma));
    if (!(sigma > 0)) throw new UsageError(`--sigma must be > 0, got ${sigma}`);
    const steps = stepCount(flags.steps);
    const delta = deltaFlag(flags.delta);
    const result = usage(() => epsilonOf({ q, noiseMultiplier: sigma, steps, delta }));
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ epsilon: result.epsilon, order: result.order })}\n`);
    } else {
      process.stdout.write(
        `ε = ${result.epsilon.toPrecision(6)} at δ = ${delta} (best RDP order ${result.order}) ` +
          `for ${steps} steps at q = ${q}, σ = ${sigma}\n`,
      );
    }
    if (result.edge) {
      process.stderr.write(`note: the best order is the ${result.edge} of the grid; a wider grid could give a tighter ε\n`);
    }
    return 0;
  },
};

export const privacySigmaCommand: Command = {
  path: ['privacy', 'sigma'],
  summary: 'smallest noise multiplier σ keeping `steps` releases within (ε, δ) (bisection, never overshoots)',
  usage: '--q RATE --epsilon TARGET --steps N --delta D [--json]',
  async run(argv) {
    const flags = parse(argv, { ...COMMON, epsilon: { type: 'string' } });
    const q = rate(flags.q);
    const targetEpsilon = numberFlag('epsilon', str(flags.epsilon));
    if (!(targetEpsilon > 0)) throw new UsageError(`--epsilon must be > 0, got ${targetEpsilon}`);
    const steps = stepCount(flags.steps);
    const delta = deltaFlag(flags.delta);
    const result = usage(() => sigmaForEpsilon({ targetEpsilon, delta, q, steps }));
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ sigma: result.sigma })}\n`);
    } else {
      process.stdout.write(
        `σ = ${result.sigma.toPrecision(6)} gives ε = ${result.epsilon.toPrecision(6)} ≤ ${targetEpsilon} at δ = ${delta} ` +
          `(order ${result.order}) for ${steps} steps at q = ${q}\n`,
      );
    }
    return 0;
  },
};

type Flags = Record<string, string | boolean | undefined>;

function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>): Flags {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Flags;
  } catch (err) {
    throw new UsageError((err as Error).message, { cause: err });
  }
}

/** A string flag's value (parseArgs types every value as string | boolean). */
function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function rate(v: string | boolean | undefined): number {
  const q = numberFlag('q', str(v));
  if (!(q > 0 && q <= 1)) throw new UsageError(`--q must be a sampling rate in (0, 1], got ${q}`);
  return q;
}

function stepCount(v: string | boolean | undefined): number {
  const steps = numberFlag('steps', str(v));
  if (!Number.isInteger(steps) || steps < 1) throw new UsageError(`--steps must be a positive integer, got ${steps}`);
  return steps;
}

function deltaFlag(v: string | boolean | undefined): number {
  const delta = numberFlag('delta', str(v));
  if (!(delta > 0 && delta < 1)) throw new UsageError(`--delta must be in (0, 1), got ${delta}`);
  return delta;
}

/** Parameter errors from the math surface as usage errors (the user typed them). */
function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof InvalidPrivacyParameterError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
}
