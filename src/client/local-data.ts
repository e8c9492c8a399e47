/**
 * The client's local training data. A real client names its own file (JSONL or CSV). The built-in task
 * (`builtin:spam`) simulates a fleet: every client process loads the same public corpus, takes its TRAIN split
 * (trainTestSplit with the run's seed, the split the coordinator evaluates on the other side of) and, with
 * `partition`, only the I-th of N Dirichlet(α) label-skewed shares of it (Hsu et al. 2019), so a demo's non-IID fleet
 * is reproducible across processes without any process seeing another's examples.
 */
import { loadDataset, partitionDirichlet, trainTestSplit, type LabeledDataset } from '../data/index.js';
import { encodeExamples, type EncodedExamples } from '../data/encode.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { TaskError } from './errors.js';

export interface PartitionSpec {
  /** I: this client's share, 0 ≤ I < N. */
  readonly index: number;
  /** N: how many shares the train split is cut into. */
  readonly count: number;
  /** α of the per-class Dirichlet; 0.5 is strongly label-skewed, 100 nearly IID. */
  readonly alpha: number;
  /** Seed of the partition; every client of one simulation must use the same. */
  readonly seed: string;
}

export interface LocalDataSpec {
  /** 'builtin:spam' or a .jsonl / .csv path. */
  readonly source: string;
  readonly partition?: PartitionSpec;
  /**
   * Held-out share of a built-in corpus that no client trains on. Must match the coordinator's eval split:
   * test fraction 0.2 (CoordinatorConfig.evalTestFraction) with the run's seed (run config `seed`, default
   * "lethe-run").
   */
  readonly split?: { readonly testFraction: number; readonly seed: string };
}

/** The coordinator's defaults: evalTestFraction 0.2 and the run config's default seed. */
export const DEFAULT_BUILTIN_SPLIT = Object.freeze({ testFraction: 0.2, seed: 'lethe-run' });
/** Partition seed used by `lethe demo` and by `client run` unless --partition-seed says otherwise. */
export const DEFAULT_PARTITION_SEED = 'lethe-partition';

/** Parses "I/N" (0-based I). */
export function parsePartition(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) throw new TaskError(`partition must be I/N with 0 ≤ I < N, got "${text}"`, 'data');
  return { index, count };
}

/** Loads the local examples the spec names (see the module comment). */
export async function loadLocalData(spec: LocalDataSpec): Promise<LabeledDataset> {
  let ds = await loadDataset(spec.source);
  if (spec.source.startsWith('builtin:')) ds = trainTestSplit(ds, spec.split ?? DEFAULT_BUILTIN_SPLIT).train;
  else if (spec.split) ds = trainTestSplit(ds, spec.split).train;
  if (spec.partition) {
    const { index, count, alpha, seed } = spec.partition;
    ds = partitionDirichlet(ds, count, alpha, seed, { minPerClient: 8 })[index]!;
  }
  if (ds.examples.length === 0) throw new TaskError(`local data ${spec.source} holds no examples`, 'data');
  return ds;
}

/** Encodes the local data for one task, checking that its labels are the task's, in the same order. */
export class LocalData {
  private readonly encodings = new Map<string, EncodedExamples>();

  constructor(readonly dataset: LabeledDataset) {}

  get size(): number {
    return this.dataset.examples.length;
  }

  /** Label counts, for the client's log line (the coordinator never sees them). */
  labelCounts(): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(this.dataset.labels.map((l) => [l, 0]));
    for (const ex of this.dataset.examples) out[this.dataset.labels[ex.label]!]! += 1;
    return out;
  }

  encoded(labels: readonly string[], tokenizer: Tokenizer, seqLen: number): EncodedExamples {
    const mine = this.dataset.labels;
    if (labels.length !== mine.length || labels.some((l, i) => l !== mine[i])) {
      throw new TaskError(`the task's labels [${labels.join(', ')}] are not the local data's [${mine.join(', ')}] (same names, same order)`, 'data');
    }
    const key = `${tokenizer.kind}/${seqLen}`;
    let enc = this.encodings.get(key);
    if (!enc) {
      enc = encodeExamples(this.dataset.examples, tokenizer, seqLen);
      this.encodings.set(key, enc);
    }
    return enc;
  }
}
