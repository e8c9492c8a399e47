/**
 * The demo's settings and the run it creates. Defaults are sized for a fresh 2-core machine: the whole demo finishes
 * in a few minutes and the global accuracy climbs visibly. The tiny base ships with Lethe (models/tiny-gpt2), so no
 * pretraining happens unless that is missing (then `lethe pretrain`'s quick 350-step base is trained first).
 *
 * Why 10 rounds × 25 local steps of batch 16 at lr 5e-3: 8 rounds × 15 steps ended 6 points below the central
 * baseline; 25 steps a round reached it within a point by round 9–10; lr 1e-2 made the local loss rise again after
 * round 3 (client drift on the skewed shares). With the shipped base (8,000 pretraining steps) the default run reaches
 * 92.2% on the 512 eval mails after round 10, where the central 300-step baseline scores 90.8% on the same mails
 * (BENCHMARKS.md); quiet, a round takes 17–19 s, about 3.5 minutes in all.
 */
import { LORA_TARGETS } from '../model/lora.js';

export interface DemoOptions {
  /** 8: client processes, each holding one Dirichlet(α) share of the SpamAssassin train split. */
  readonly clients: number;
  /** 10: federated rounds. */
  readonly rounds: number;
  /** 0.5: Dirichlet concentration of the label skew (0.5 = strongly non-IID; 100 ≈ IID). */
  readonly alpha: number;
  /** Where the base model, the session's processes and the report live; default <LETHE_HOME or ~/.lethe>/demo. */
  readonly dataDir: string;
  /** 0: the coordinator's port (0 = any free one). */
  readonly port: number;
  /** false: central user-level DP (DP-FedAvg, ALGORITHMS.md §2), ε shown per round. */
  readonly privacy: boolean;
  /** 'builtin:tiny': base model of the run (a checkpoint directory works too: tests use a smaller one). */
  readonly baseModel: string;
  /** 128: tokens (bytes) per example, as the central baseline (`lethe train --local`): the subject and first lines. */
  readonly seqLen: number;
  /** 25: local optimisation steps per client per round. */
  readonly localSteps: number;
  /** 16: local batch size. */
  readonly batchSize: number;
  /** 5e-3: local AdamW learning rate (LoRA B and the head; A is frozen under FFA-LoRA); 1e-2 overshoots on non-IID shares. */
  readonly lr: number;
  /** 8: LoRA rank. */
  readonly rank: number;
  /** 180: seconds a round waits for slow clients before closing with those that answered. */
  readonly roundDeadlineS: number;
  /** tfjs backend of every process; `lethe demo` passes the one it selected itself (undefined: each picks its own). */
  readonly backend: string | undefined;
  /** false: after the run, client 0 forgets a group of the corpus it alone holds (unlearn.ts). */
  readonly unlearn: boolean;
  /** Central DP settings used with `privacy`. */
  readonly dp: { readonly epsilon: number; readonly delta: number; readonly clip: number };
}

export const DEFAULT_DEMO: Omit<DemoOptions, 'dataDir'> = Object.freeze({
  clients: 8,
  rounds: 10,
  alpha: 0.5,
  port: 0,
  privacy: false,
  baseModel: 'builtin:tiny',
  seqLen: 128,
  localSteps: 25,
  batchSize: 16,
  lr: 5e-3,
  rank: 8,
  roundDeadlineS: 180,
  backend: undefined,
  unlearn: false,
  dp: Object.freeze({ epsilon: 10, delta: 1e-5, clip: 0.5 }),
});

/** The run seed: clients split the corpus with it too (local-data.ts), so train and eval never overlap. */
export const DEMO_RUN_SEED = 'lethe-run';

/** The run-config fields that decide the eval set and the initial adapter (snake_case, as demoRunConfig writes them). */
export interface EvalRunFields {
  readonly seq_len: number;
  readonly seed: string;
  readonly labels: readonly string[];
  readonly lora: { readonly r: number; readonly alpha: number; readonly targets: readonly string[]; readonly seed: string };
}

/** The JSON run config (src/coordinator/run-config.ts) of the demo's run. */
export function demoRunConfig(o: DemoOptions): EvalRunFields & Record<string, unknown> {
  return {
    name: `demo: ${o.clients} clients, Dirichlet α=${o.alpha}${o.privacy ? ', central DP' : ''}`,
    base_model: o.baseModel,
    task: 'builtin:spam',
    labels: ['ham', 'spam'],
    seq_len: o.seqLen,
    // Attention and MLP, as the central baseline: attention-only FFA-LoRA underfits the tiny base.
    lora: { r: o.rank, alpha: 2 * o.rank, targets: [...LORA_TARGETS], seed: 'lethe' },
    aggregation: 'ffa',
    rounds: o.rounds,
    // Every client every round; Poisson with q = 1 so that central DP's accountant applies unchanged.
    sample_rate: 1,
    min_clients: Math.max(1, Math.ceil(o.clients / 2)),
    round_deadline_s: o.roundDeadlineS,
    local: { mode: 'backprop', steps: o.localSteps, batch_size: o.batchSize, lr: o.lr },
    eval_data: 'builtin:spam',
    seed: DEMO_RUN_SEED,
    ...(o.privacy ? { privacy: { mode: 'central', epsilon: o.dp.epsilon, delta: o.dp.delta, clip: o.dp.clip, noise_multiplier: 'auto' } } : {}),
  };
}
