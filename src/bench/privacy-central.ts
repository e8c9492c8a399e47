/**
 * Utility of central user-level DP (DP-FedAvg; ALGORITHMS.md §2) with a simulated population: accuracy vs ε on the
 * demo task. N lightweight clients live in this process and share one model; each holds a Dirichlet(α) share of the
 * SpamAssassin train split (the demo's partition, minimum 8 examples each) and the run is evaluated on the demo's
 * held-out split.
 *
 * Per round, everything that decides the numbers is the production code path minus the transport (as in curves.ts):
 *   - the run config is the demo's with Poisson sampling at rate q and `privacy: {mode: central, noise_multiplier:
 *     auto}`, so σ is calibrated by the coordinator's privacyPlan for the planned rounds;
 *   - clients are drawn by the coordinator's sampleClients and the round's release is reserved in a PrivacyLedger
 *     (roundRelease) before anyone trains, as round-driver.ts does;
 *   - each sampled client runs computeUpdate (the client's task code: local backprop steps, then clipping to the
 *     task's clip norm via the task's PrivacyInstructions);
 *   - the coordinator's buildStrategy stack aggregates: clip to C, N(0, σ²C² I) on the sum, division by the expected
 *     number of participants q·N.
 * ε = ∞ is the same simulation with no privacy block: no clipping, no noise, example-weighted FedAvg.
 */
import seedrandom from 'seedrandom';
import { computeUpdate } from '../client/train-task.js';
import { DEFAULT_PARTITION_SEED } from '../client/local-data.js';
import { denseRound, type StoredUpdate } from '../coordinator/forward-only.js';
import { runLayout } from '../coordinator/layout.js';
import { parseRunConfig, type RunConfig } from '../coordinator/run-config.js';
import { buildStrategy, privacyInstructions, privacyPlan, roundRelease, type StrategyState } from '../coordinator/run-strategy.js';
import { taskOf } from '../coordinator/tasks.js';
import type { RunContext } from '../coordinator/runs.js';
import { expectedParticipants, sampleClients } from '../coordinator/sampling.js';
import { encodeExamples, loadDataset, partitionDirichlet, trainTestSplit, type EncodedExamples } from '../data/index.js';
import { DEFAULT_DEMO, DEMO_RUN_SEED, demoRunConfig } from '../demo/config.js';
import { GPT2 } from '../model/gpt2.js';
import { initAdapter } from '../model/lora.js';
import { tokenizerFor } from '../model/tokenizer.js';
import { gaussianNoise } from '../privacy/gaussian.js';
import { InMemoryLedgerStore, PrivacyLedger } from '../privacy/ledger.js';
import type { HostTensor } from '../tensors/host.js';
import { evaluate } from '../train/evaluate.js';
import { ensurePretrainedBase } from '../train/pretrain.js';

export interface CentralDpBenchOptions {
  readonly dataDir: string;
  /** Target ε of each run; Infinity = no DP. */
  readonly epsilons: readonly number[];
  readonly delta: number;
  /** N: simulated clients. */
  readonly clients: number;
  /** q: Poisson sampling rate per round (q·N expected participants). */
  readonly samplingRate: number;
  readonly rounds: number;
  /** C: the clip norm of each client's update. */
  readonly clip: number;
  /** Local backprop steps, batch and AdamW lr per client per round. */
  readonly localSteps: number;
  readonly localBatch: number;
  readonly lr: number;
  /** The server's FedAvg step size η on the (noisy) mean update; 1 = plain FedAvg. */
  readonly serverLr: number;
  /** Dirichlet α of the label skew (the demo's 0.5). */
  readonly alpha: number;
  /** Held-out examples scored (a prefix of the demo's eval split). */
  readonly testExamples: number;
  readonly onProgress?: (line: string) => void;
}

export const CENTRAL_DP_DEFAULTS: Omit<CentralDpBenchOptions, 'dataDir' | 'onProgress'> = Object.freeze({
  epsilons: Object.freeze([1, 2, 4, 8, Number.POSITIVE_INFINITY]),
  delta: 1e-5,
  clients: 500,
  samplingRate: 0.1,
  rounds: 20,
  clip: 0.5,
  localSteps: 2,
  localBatch: 8,
  lr: 5e-3,
  serverLr: 1,
  alpha: DEFAULT_DEMO.alpha,
  testExamples: 512,
});

export interface CentralDpPoint {
  readonly suite: 'privacy-central';
  /** Target ε; null for the non-private run (JSON has no Infinity). */
  readonly epsilon_target: number | null;
  /** ε the ledger holds after the run (recomputed from its entries); null without DP. */
  readonly epsilon_spent: number | null;
  readonly delta: number;
  /** σ the run config's 'auto' calibrated; 0 without DP. */
  readonly sigma: number;
  readonly clients: number;
  readonly q: number;
  readonly expected_per_round: number;
  readonly mean_sampled: number;
  readonly rounds: number;
  readonly clip: number;
  readonly local_steps: number;
  readonly local_lr: number;
  readonly server_lr: number;
  readonly accuracy_before: number;
  readonly accuracy: number;
  readonly loss: number;
  readonly seconds: number;
}

/** The demo's run config, with this simulation's population sampling, local settings and (finite ε) central DP. */
export function centralRunConfig(opts: CentralDpBenchOptions, epsilon: number): RunConfig {
  const demo = demoRunConfig({ ...DEFAULT_DEMO, dataDir: '', rounds: opts.rounds, alpha: opts.alpha });
  return parseRunConfig({
    ...demo,
    sample_rate: opts.samplingRate,
    min_clients: 1,
    local: { mode: 'backprop', steps: opts.localSteps, batch_size: opts.localBatch, lr: opts.lr },
    server_optimizer: { kind: 'fedavg', lr: opts.serverLr },
    ...(Number.isFinite(epsilon) ? { privacy: { mode: 'central', epsilon, delta: opts.delta, clip: opts.clip, noise_multiplier: 'auto' } } : {}),
  });
}

interface SimClient {
  readonly id: string;
  readonly numExamples: number;
  readonly data: EncodedExamples;
}

async function runOne(epsilon: number, model: GPT2, clients: readonly SimClient[], test: EncodedExamples, opts: CentralDpBenchOptions): Promise<CentralDpPoint> {
  const began = performance.now();
  const config = centralRunConfig(opts, epsilon);
  const plan = privacyPlan(config);
  const ctx: RunContext = Object.freeze({ id: `privacy-central-${epsilon}`, config, layout: runLayout(model.config, config), plan });
  const ledger = new PrivacyLedger({ store: new InMemoryLedgerStore() });
  if (plan) ledger.setBudget(ctx.id, { epsilon: plan.epsilon, delta: plan.delta });
  let global: Map<string, HostTensor> = initAdapter(ctx.layout.model, ctx.layout.lora);
  const before = evaluate(model, ctx.layout.lora, global, test);
  let state: StrategyState = {};
  let sampledTotal = 0;
  const m = expectedParticipants(clients.length, config.sampling);
  for (let round = 1; round <= config.rounds; round++) {
    const rand = seedrandom(`${config.seed}/${ctx.id}/round/${round}`); // round-driver.ts's per-round stream
    const sampled = sampleClients(clients, config.sampling, () => rand());
    sampledTotal += sampled.length;
    if (plan && sampled.length > 0) await ledger.reserve(ctx.id, round, roundRelease(config, plan, sampled.map((c) => c.numExamples)));
    const built = buildStrategy(config, plan, state, m);
    const stored: StoredUpdate[] = [];
    for (const client of sampled) {
      const out = await computeUpdate(
        taskOf(ctx, round, client.id, {
          training: 'TRAINING_MODE_BACKPROP',
          deadlineMs: Number.MAX_SAFE_INTEGER,
          adapterSha256: Buffer.alloc(32),
          mezo: null,
          essa: null,
          privacy: privacyInstructions(ctx.config, ctx.plan, built.clipNorm, client.numExamples),
        }),
        { model, global, data: client.data, noise: gaussianNoise });
      stored.push({ clientId: client.id, numExamples: out.numExamples, kind: out.kind, tensors: out.tensors, metrics: out.metrics });
    }
    const dense = denseRound(ctx, round, global, stored, undefined, plan ? 'equal' : 'examples');
    const outcome = built.strategy.aggregate({ round, global, expectedClients: m }, dense.results, []);
    if (outcome) global = outcome.global;
    state = built.exportState();
    if (round % 10 === 0 || round === config.rounds) {
      const e = evaluate(model, ctx.layout.lora, global, test);
      opts.onProgress?.(`ε ${epsilon} round ${round}/${config.rounds}: ${sampled.length} clients, eval accuracy ${e.accuracy.toFixed(4)}`);
    }
  }
  const after = evaluate(model, ctx.layout.lora, global, test);
  return {
    suite: 'privacy-central',
    epsilon_target: Number.isFinite(epsilon) ? epsilon : null,
    epsilon_spent: plan ? (await ledger.spent(ctx.id)).epsilon : null,
    delta: opts.delta,
    sigma: plan?.sigma ?? 0,
    clients: clients.length,
    q: opts.samplingRate,
    expected_per_round: m,
    mean_sampled: sampledTotal / config.rounds,
    rounds: config.rounds,
    clip: opts.clip,
    local_steps: opts.localSteps,
    local_lr: opts.lr,
    server_lr: opts.serverLr,
    accuracy_before: before.accuracy,
    accuracy: after.accuracy,
    loss: after.loss,
    seconds: (performance.now() - began) / 1000,
  };
}

/** Runs the simulation once per ε, on one model and one partition. */
export async function benchCentralDp(opts: CentralDpBenchOptions): Promise<CentralDpPoint[]> {
  const base = await ensurePretrainedBase(opts.dataDir);
  const model = new GPT2(base.config, base.weights);
  try {
    const config = centralRunConfig(opts, Number.POSITIVE_INFINITY);
    const tokenizer = tokenizerFor(model.config);
    const all = await loadDataset(config.task, { labels: config.labels });
    const { train, test } = trainTestSplit(all, { testFraction: 0.2, seed: DEMO_RUN_SEED });
    const shares = partitionDirichlet(train, opts.clients, opts.alpha, DEFAULT_PARTITION_SEED, { minPerClient: 8 });
    const clients = shares.map((ds, k): SimClient => ({ id: `c${k}`, numExamples: ds.examples.length, data: encodeExamples(ds.examples, tokenizer, config.seqLen) }));
    const testSet = encodeExamples(test.examples.slice(0, opts.testExamples), tokenizer, config.seqLen);
    const points: CentralDpPoint[] = [];
    for (const epsilon of opts.epsilons) points.push(await runOne(epsilon, model, clients, testSet, opts));
    return points;
  } finally {
    model.dispose();
  }
}
