/** Flag parsing and start-up steps every `lethe` command shares. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type BackendChoice, backendFromEnv, initBackend, parseBackendName } from '../backend/backend.js';
import { installWasmTransposedMatMul } from '../backend/wasm-matmul.js';
import { tlsClientFiles, TlsConfigError, type TlsClientFiles } from '../wire/tls.js';
import { UsageError, numberFlag } from './command.js';

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

/** A number flag above zero, or `fallback`. */
export function positiveFlag(name: string, v: string | boolean | undefined, fallback: number): number {
  const n = numberFlag(name, str(v), fallback);
  if (!(n > 0)) throw new UsageError(`--${name} must be > 0, got ${n}`);
  return n;
}

/** --tls-ca [--tls-cert --tls-key] as absolute paths (they are recorded, and used from any directory later). */
export function tlsFlags(flags: Flags): TlsClientFiles | undefined {
  const path = (k: string): string | undefined => {
    const v = str(flags[k]);
    return v === undefined ? undefined : resolve(v);
  };
  try {
    return tlsClientFiles(path('tls-ca'), path('tls-cert'), path('tls-key'));
  } catch (err) {
    if (err instanceof TlsConfigError) throw new UsageError(err.message);
    throw err;
  }
}
