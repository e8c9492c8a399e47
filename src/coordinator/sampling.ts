/**
 * Which clients take part in a round, and in which mode. Pure: the random stream is injected (seedrandom in the
 * coordinator, seeded per run and round so a restarted coordinator re-derives the same sample).
 */
import type { LocalMode, ModePolicy, Sampling } from './run-config.js';

/** A client as sampling sees it. */
export interface Candidate {
  readonly id: string;
  /** Memory the client said it can spend on training, in MiB (0 when it did not say). */
  readonly memoryMb: number;
  /** Modes the client declared it can run. */
  readonly modes: readonly LocalMode[];
}

/** Uniform [0, 1) numbers. */
export type Uniform = () => number;

/**
 * Poisson sampling keeps each candidate with probability q independently (the sample size varies; the DP
 * accountant's amplification-by-subsampling assumes exactly this). Count sampling is a partial Fisher–Yates shuffle.
 */
export function sampleClients<T extends { readonly id: string }>(candidates: readonly T[], sampling: Sampling, rand: Uniform): T[] {
  if (sampling.kind === 'poisson') return candidates.filter(() => rand() < sampling.q);
  const pool = [...candidates];
  const k = Math.min(sampling.count, pool.length);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, k);
}

/** The number of participants a round expects: DP divides by this, never by the number that replied. */
export function expectedParticipants(population: number, sampling: Sampling): number {
  return sampling.kind === 'poisson' ? sampling.q * population : Math.min(sampling.count, population);
}

/**
 * The mode a sampled client trains in this round: the policy's choice for its memory class when it can run that
 * mode, else the first forward-only mode it declared, else undefined (the client is skipped).
 */
export function assignMode(client: Candidate, fallback: LocalMode, policy: ModePolicy | undefined): LocalMode | undefined {
  const wanted = policy ? (client.memoryMb > 0 && client.memoryMb < policy.lowMemoryBelowMb ? policy.lowMemory : policy.default) : fallback;
  if (client.modes.length === 0 || client.modes.includes(wanted)) return wanted;
  return (['mezo', 'essa'] as const).find((m) => client.modes.includes(m));
}
