/**
 * A run's configuration: what the operator writes (JSON, snake_case keys) and the frozen, validated object the
 * coordinator works from. Every field has a default chosen for the built-in demo task; every error names the field
 * and says what was expected, so a bad config is rejected before anything is written.
 */
import { ConfigError } from './errors.js';

export type AggregationKind = 'ffa' | 'exact' | 'fedavg';
export type LocalMode = 'backprop' | 'mezo' | 'essa';
export type ServerOptimizerKind = 'fedavg' | 'fedadam' | 'fedyogi';
export type PrivacyMode = 'central' | 'local' | 'sample';
/** How forward-only clients upload: the dense adapter delta, or FedKSeed's K accumulated scalars. */
export type MezoUpload = 'dense' | 'seeds';
/** task.proto EssaParams.fitness. */
export type EssaFitness = 'neg_loss' | 'accuracy';

export type Sampling =
  /** Each live client joins a round independently with probability q (Poisson; what DP amplification assumes). */
  | { readonly kind: 'poisson'; readonly q: number }
  /** A uniformly random subset of this many live clients (all of them when fewer are live). */
  | { readonly kind: 'count'; readonly count: number };

export interface LocalTraining {
  readonly mode: LocalMode;
  /** Local optimisation steps per round. */
  readonly steps: number;
  readonly batchSize: number;
  /** Backprop: AdamW lr. */
  readonly lr: number;
  /**
   * MeZO: SGD lr (reference 1e-4 .. 5e-5 for large models; tiny models take more). Its own field because a mixed run
   * has backprop and MeZO clients at once, on different scales; default: `lr`.
   */
  readonly mezoLr: number;
  /** MeZO perturbation scale ε (ALGORITHMS.md §3). */
  readonly mezoEps: number;
  readonly mezoUpload: MezoUpload;
  /** FedKSeed candidate seeds per run (ALGORITHMS.md §4). */
  readonly seedPoolK: number;
  /** ESSA antithetic pairs per generation and perturbation scale σ (ALGORITHMS.md §5). */
  readonly essaPairs: number;
  readonly essaSigma: number;
  /** ESSA Adam step size on the singular values (reference 0.01). */
  readonly essaLr: number;
  /** What ESSA ranks members by: −mean cross-entropy ('neg_loss', smooth on small batches) or accuracy. */
  readonly essaFitness: EssaFitness;
  /** Local examples each ESSA member is evaluated on (one shuffled batch per task). */
  readonly essaEvalExamples: number;
}

export interface ModePolicy {
  /** Mode for clients whose memory budget is at least `lowMemoryBelowMb`. */
  readonly default: LocalMode;
  /** Mode for clients with less memory than `lowMemoryBelowMb`. */
  readonly lowMemory: LocalMode;
  readonly lowMemoryBelowMb: number;
}

export interface PrivacyConfig {
  readonly mode: PrivacyMode;
  readonly epsilon: number;
  readonly delta: number;
  /** L2 clip norm C of a client's whole update (central/local) or of one example's gradient (sample). */
  readonly clip: number;
  /** σ, or 'auto' to calibrate σ so the planned rounds fit the budget. */
  readonly noiseMultiplier: number | 'auto';
  /** Adaptive clipping (Andrew et al. 2021) for central DP. */
  readonly adaptive: boolean;
}

export interface RunConfig {
  readonly name: string;
  /** 'builtin:tiny' (the pretrained tiny GPT-2) or a directory with a Hugging Face GPT-2 checkpoint. */
  readonly baseModel: string;
  /** Task name clients train on; 'builtin:spam' is the SpamAssassin ham/spam task. */
  readonly task: string;
  readonly labels: readonly string[];
  /** Tokens per example (truncate/pad). */
  readonly seqLen: number;
  readonly lora: { readonly r: number; readonly alpha: number; readonly targets: readonly string[]; readonly seed: string };
  readonly aggregation: AggregationKind;
  readonly serverOptimizer: { readonly kind: ServerOptimizerKind; readonly lr: number };
  readonly rounds: number;
  readonly sampling: Sampling;
  /** A round with fewer accepted updates than this fails (and the global adapter stays). */
  readonly minClients: number;
  readonly roundDeadlineS: number;
  readonly local: LocalTraining;
  /** Absent: every client runs `local.mode`. */
  readonly modes: ModePolicy | undefined;
  readonly privacy: PrivacyConfig | undefined;
  /** Dataset spec the coordinator evaluates the global adapter on after each round ('' = none). */
  readonly evalData: string;
  readonly seed: string;
}

const LORA_TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads fields of one JSON object, recording unknown keys so typos are errors rather than silently ignored. */
class Reader {
  private readonly seen = new Set<string>();
  constructor(
    private readonly raw: Raw,
    private readonly path: string,
  ) {}

  private at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  private get(key: string): unknown {
    this.seen.add(key);
    return this.raw[key];
  }

  number(key: string, fallback: number, check: { min?: number; max?: number; integer?: boolean; minExclusive?: number } = {}): number {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${this.at(key)} must be a finite number, got ${JSON.stringify(v)}`);
    if (check.integer && !Number.isInteger(v)) throw new ConfigError(`${this.at(key)} must be an integer, got ${v}`);
    if (check.min !== undefined && v < check.min) throw new ConfigError(`${this.at(key)} must be ≥ ${check.min}, got ${v}`);
    if (check.minExclusive !== undefined && v <= check.minExclusive) throw new ConfigError(`${this.at(key)} must be > ${check.minExclusive}, got ${v}`);
    if (check.max !== undefined && v > check.max) throw new ConfigError(`${this.at(key)} must be ≤ ${check.max}, got ${v}`);
    return v;
  }

  string(key: string, fallback: string): string {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw new ConfigError(`${this.at(key)} must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  oneOf<T extends string>(key: string, options: readonly T[], fallback: T): T {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || !(options as readonly string[]).includes(v)) {
      throw new ConfigError(`${this.at(key)} must be one of ${options.join(', ')}, got ${JSON.stringify(v)}`);
    }
    return v as T;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(`${this.at(key)} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  strings(key: string, fallback: readonly string[]): readonly string[] {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
      throw new ConfigError(`${this.at(key)} must be a list of strings, got ${JSON.stringify(v)}`);
    }
    return Object.freeze([...(v as string[])]);
  }

  /** A nested object, or undefined when absent. */
  object(key: string): Reader | undefined {
    const v = this.get(key);
    if (v === undefined || v === null) return undefined;
    if (!isObject(v)) throw new ConfigError(`${this.at(key)} must be an object, got ${JSON.stringify(v)}`);
    return new Reader(v, this.at(key));
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined;
  }

  value(key: string): unknown {
    return this.get(key);
  }

  /** Throws when the object had keys no reader asked for. */
  done(): void {
    const unknown = Object.keys(this.raw).filter((k) => !this.seen.has(k));
    if (unknown.length > 0) {
      throw new ConfigError(`unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => this.at(k)).join(', ')}`);
    }
  }
}

function readLocal(r: Reader | undefined): LocalTraining {
  const l = r ?? new Reader({}, 'local');
  const lr = l.number('lr', 2e-3, { minExclusive: 0 });
  const local: LocalTraining = {
    mode: l.oneOf('mode', ['backprop', 'mezo', 'essa'] as const, 'backprop'),
    steps: l.number('steps', 30, { min: 1, integer: true }),
    batchSize: l.number('batch_size', 16, { min: 1, integer: true }),
    lr,
    mezoLr: l.number('mezo_lr', lr, { minExclusive: 0 }),
    mezoEps: l.number('mezo_eps', 1e-2, { minExclusive: 0 }),
    mezoUpload: l.oneOf('mezo_upload', ['dense', 'seeds'] as const, 'dense'),
    seedPoolK: l.number('seed_pool_k', 4096, { min: 1, max: 1 << 20, integer: true }),
    essaPairs: l.number('essa_pairs', 8, { min: 1, integer: true }),
    essaSigma: l.number('essa_sigma', 0.02, { minExclusive: 0 }),
    essaLr: l.number('essa_lr', 0.01, { minExclusive: 0 }),
    essaFitness: l.oneOf('essa_fitness', ['neg_loss', 'accuracy'] as const, 'neg_loss'),
    essaEvalExamples: l.number('essa_eval_examples', 64, { min: 1, integer: true }),
  };
  l.done();
  return Object.freeze(local);
}

function readPrivacy(p: Reader): PrivacyConfig {
  const raw = p.value('noise_multiplier');
  let noiseMultiplier: number | 'auto';
  if (raw === undefined || raw === 'auto') noiseMultiplier = 'auto';
  else if (typeof raw === 'number' && Number.isFinite(raw) && raw > 0) noiseMultiplier = raw;
  else throw new ConfigError(`privacy.noise_multiplier must be a positive number or "auto", got ${JSON.stringify(raw)}`);
  const privacy: PrivacyConfig = {
    mode: p.oneOf('mode', ['central', 'local', 'sample'] as const, 'central'),
    epsilon: p.number('epsilon', 8, { minExclusive: 0 }),
    delta: p.number('delta', 1e-5, { minExclusive: 0, max: 0.5 }),
    clip: p.number('clip', 1, { minExclusive: 0 }),
    noiseMultiplier,
    adaptive: p.bool('adaptive', false),
  };
  p.done();
  return Object.freeze(privacy);
}

/** Validates a parsed JSON run config and fills defaults. Throws ConfigError naming the offending field. */
export function parseRunConfig(input: unknown): RunConfig {
  if (!isObject(input)) throw new ConfigError(`a run config must be a JSON object, got ${JSON.stringify(input)}`);
  const r = new Reader(input, '');

  const loraR = r.object('lora') ?? new Reader({}, 'lora');
  const lora = Object.freeze({
    r: loraR.number('r', 8, { min: 1, integer: true }),
    alpha: loraR.number('alpha', 16, { minExclusive: 0 }),
    targets: loraR.strings('targets', ['attn.c_attn', 'attn.c_proj']),
    seed: loraR.string('seed', 'lethe'),
  });
  loraR.done();
  const badTarget = lora.targets.find((t) => !LORA_TARGETS.includes(t));
  if (badTarget !== undefined) throw new ConfigError(`lora.targets: unknown module "${badTarget}"; expected some of ${LORA_TARGETS.join(', ')}`);
  if (lora.targets.length === 0) throw new ConfigError('lora.targets must name at least one module');

  const optR = r.object('server_optimizer') ?? new Reader({}, 'server_optimizer');
  const optKind = optR.oneOf('kind', ['fedavg', 'fedadam', 'fedyogi'] as const, 'fedavg');
  const serverOptimizer = Object.freeze({ kind: optKind, lr: optR.number('lr', optKind === 'fedavg' ? 1 : 1e-2, { minExclusive: 0 }) });
  optR.done();

  let sampling: Sampling;
  const hasQ = r.has('sample_rate');
  const hasCount = r.has('clients_per_round');
  if (hasQ && hasCount) throw new ConfigError('set either sample_rate (Poisson sampling) or clients_per_round, not both');
  if (hasCount) sampling = { kind: 'count', count: r.number('clients_per_round', 0, { min: 1, integer: true }) };
  else sampling = { kind: 'poisson', q: r.number('sample_rate', 1, { minExclusive: 0, max: 1 }) };

  const modesR = r.object('modes');
  let modes: ModePolicy | undefined;
  if (modesR) {
    const all = ['backprop', 'mezo', 'essa'] as const;
    modes = Object.freeze({
      default: modesR.oneOf('default', all, 'backprop'),
      lowMemory: modesR.oneOf('low_memory', all, 'mezo'),
      lowMemoryBelowMb: modesR.number('low_memory_below_mb', 1024, { minExclusive: 0 }),
    });
    modesR.done();
  }

  const privacyR = r.object('privacy');
  const config: RunConfig = {
    name: r.string('name', 'run'),
    baseModel: r.string('base_model', 'builtin:tiny'),
    task: r.string('task', 'builtin:spam'),
    labels: r.strings('labels', ['ham', 'spam']),
    seqLen: r.number('seq_len', 128, { min: 2, integer: true }),
    lora,
    aggregation: r.oneOf('aggregation', ['ffa', 'exact', 'fedavg'] as const, 'ffa'),
    serverOptimizer,
    rounds: r.number('rounds', 10, { min: 1, integer: true }),
    sampling,
    minClients: r.number('min_clients', 2, { min: 1, integer: true }),
    roundDeadlineS: r.number('round_deadline_s', 300, { minExclusive: 0 }),
    local: readLocal(r.object('local')),
    modes,
    privacy: privacyR ? readPrivacy(privacyR) : undefined,
    evalData: r.string('eval_data', ''),
    seed: r.string('seed', 'lethe-run'),
  };
  r.done();
  if (config.labels.length < 2) throw new ConfigError('labels must name at least two classes');
  if (config.privacy && config.aggregation === 'exact') {
    throw new ConfigError('privacy needs aggregation "ffa" or "fedavg": noise on re-factored products is not a Gaussian mechanism on the update');
  }
  const { kind: optimizer, lr } = config.serverOptimizer;
  if (config.aggregation === 'exact' && !(optimizer === 'fedavg' && lr === 1)) {
    throw new ConfigError(
      `server_optimizer ${optimizer} (lr ${lr}) cannot be combined with aggregation "exact": it re-factors lora_A and lora_B by SVD every round, ` +
        'so steps or moments on the factors are meaningless; use aggregation "ffa" with a server optimizer',
    );
  }
  const named = [config.local.mode, ...(config.modes ? [config.modes.default, config.modes.lowMemory] : [])];
  if (config.privacy && named.includes('essa')) {
    throw new ConfigError('privacy cannot be combined with ESSA: its fitness uploads are not a Gaussian release the accountant covers; use backprop or mezo');
  }
  if (config.privacy?.mode === 'central' && config.sampling.kind !== 'poisson') {
    throw new ConfigError('central DP needs sample_rate (Poisson client sampling): the accountant assumes it');
  }
  return Object.freeze(config);
}

/** The config as the operator would write it (snake_case JSON), e.g. for `lethe status` or a report. */
export function runConfigToJson(c: RunConfig): Record<string, unknown> {
  return {
    name: c.name,
    base_model: c.baseModel,
    task: c.task,
    labels: c.labels,
    seq_len: c.seqLen,
    lora: c.lora,
    aggregation: c.aggregation,
    server_optimizer: c.serverOptimizer,
    rounds: c.rounds,
    ...(c.sampling.kind === 'poisson' ? { sample_rate: c.sampling.q } : { clients_per_round: c.sampling.count }),
    min_clients: c.minClients,
    round_deadline_s: c.roundDeadlineS,
    local: {
      mode: c.local.mode,
      steps: c.local.steps,
      batch_size: c.local.batchSize,
      lr: c.local.lr,
      mezo_lr: c.local.mezoLr,
      mezo_eps: c.local.mezoEps,
      mezo_upload: c.local.mezoUpload,
      seed_pool_k: c.local.seedPoolK,
      essa_pairs: c.local.essaPairs,
      essa_sigma: c.local.essaSigma,
      essa_lr: c.local.essaLr,
      essa_fitness: c.local.essaFitness,
      essa_eval_examples: c.local.essaEvalExamples,
    },
    ...(c.modes ? { modes: { default: c.modes.default, low_memory: c.modes.lowMemory, low_memory_below_mb: c.modes.lowMemoryBelowMb } } : {}),
    ...(c.privacy
      ? {
          privacy: {
            mode: c.privacy.mode,
            epsilon: c.privacy.epsilon,
            delta: c.privacy.delta,
            clip: c.privacy.clip,
            noise_multiplier: c.privacy.noiseMultiplier,
            adaptive: c.privacy.adaptive,
          },
        }
      : {}),
    eval_data: c.evalData,
    seed: c.seed,
  };
}
