/**
 * O3's out-of-distribution detector for one unlearning request (Gao et al. 2024 §3.3; ALGORITHMS.md §6): how much an
 * input looks like the forget data D_t, from the frozen base model's pooled hidden states f_ℓ(x) [F] (features.ts).
 *
 * Per detector layer ℓ, from D_t's features: the mean μ_ℓ, a Ledoit–Wolf shrinkage precision P_ℓ (stats.ledoitWolf:
 * shrinks toward a scaled identity by the estimated optimal amount) and — unless bank-free — a bank of D_t's centred,
 * L2-normalised features. With `reference` (the default), also the mean ν_ℓ and shrinkage precision Q_ℓ of the generic
 * inputs the gate is calibrated against. The layer's score components are the two Mahalanobis distances
 *   d_in,ℓ(x) = (f − μ)ᵀ P (f − μ) / F,   d_out,ℓ(x) = (f − ν)ᵀ Q (f − ν) / F,
 * and the detector's logit is their linear combination z(x) = Σ_ℓ (a_ℓ d_in,ℓ + b_ℓ d_out,ℓ) + c: by default
 * (`difference`) b_ℓ = −a_ℓ > 0 (for one block the plain difference up to scale; several: see the input block
 * below), c = 0, the gate's calibration supplying the threshold; or (`logistic`) a
 * class-balanced, ridge-regularised logistic regression of D_t against the generic inputs (the paper feeds per-layer
 * scores to a one-class SVM; ALGORITHMS.md allows a calibrated linear combination). The difference is the relative
 * Mahalanobis distance (Ren et al. 2021, "A simple fix to Mahalanobis distance for improving near-OOD
 * detection"): how much closer x is to D_t than to ordinary inputs. Plain d_in alone flags any unusual text as
 * forget-like; on SpamAssassin with the tiny base it reached a held-out AUROC of 0.63 for hard-ham-1, the relative
 * form 0.87 (mean+std pooling; 0.88 with max and min too, BENCHMARKS.md). z > 0 leans "from D_t".
 *
 * The input block (ngrams.ts; `input`, on by default) is one more block of the same kind, on the input's hashed token
 * n-grams instead of a hidden state: its own μ, P (and ν, Q), its own d_in and d_out. With `difference`, block j's
 * r_j = d_out,j − d_in,j enters z with weight a_j = max(g_j, 0) / s_j², g_j the gap between the medians of the
 * cross-fitted r_j of D_t and of the generic inputs and s_j the generic inputs' interquartile range of r_j (a robust
 * Fisher weighting of independent scores): the 1,024-wide input block's differences run far larger than the
 * embedding layer's and would otherwise decide alone, whatever either separates. On SpamAssassin the input block
 * lifted hard-ham-1's held-out AUROC from 0.864 to 0.94 at no forward cost (BENCHMARKS.md, Unlearning). The support
 * distance stays the layers' own.
 *
 * With `neighbours` = k > 0 (the default, 5) the input block keeps rows instead of moments: D_t's n-gram profiles and
 * the generic inputs', and its d_in and d_out are the distances to the k nearest of each (neighbours.ts; the generic
 * bank's k scaled by the banks' size ratio, referenceK), one minus their mean cosine. Its r = d_out − d_in then
 * decides z alone (a = 1, the layers' weights 0): it beat the Gaussian block on every SpamAssassin group, and adding
 * the embedding layer at its robust Fisher weight lowered it (0.960 against 0.943 on hard-ham-1, one k for both
 * banks). Those rows are the price (see "What a package reveals").
 *
 * The gate also bounds d_in (the support check, gate.ts): a relative score can favour a text far from both D_t and
 * the generic inputs, so inputs farther from D_t than its own held-out members never get its adapter. That alone let
 * short unrelated sentences through next to a mail forget set; the requests therefore add public-text snippets to the
 * generic inputs (public-text.ts), so ordinary prose of every length is part of the reference model.
 *
 * The bank's cosine does not enter z: it is reported separately as each input's nearest centred bank cosine, with
 * which the gate recognises the forget samples themselves (gate.ts); on unseen inputs it separated worse than either
 * distance.
 *
 * Serving: device-detector.ts.
 *
 * What a package reveals: μ, P (and ν, Q) are aggregate second-order statistics of D_t's (and of the client's other
 * data's) features. A Gaussian input block's are more legible than a hidden state's: its mean is D_t's average hashed
 * n-gram profile, so comparing μ with ν (or with the n-gram profile of any text) shows which n-grams — on a byte-level
 * base, word pieces and short words — the forgotten texts use more than ordinary ones, up to hash collisions among
 * 1,024 buckets; its precision adds which ones co-occur. It keeps no per-example rows, but a forget set of one or a
 * few texts is thereby largely revealed. A neighbour input block keeps every row: the hashed n-gram profile of each
 * forget example and of each generic input the detector was fitted against — the client's other data, which is not
 * being forgotten. Anyone holding the package can test whether a candidate text was among either (its profile is a
 * near-exact match), and a short text's profile goes far to spell it out. `input: null` drops the block (the
 * layers' aggregates only).
 * The bank holds every forget example's feature direction (m = |D_t| vectors per layer), from which an attacker with
 * the base model can test whether a candidate text was in D_t, and may partially invert the text. Bank-free mode
 * (`bank: false`, which needs `neighbours: 0`) stores only aggregates and cannot recognise the forget samples
 * themselves; z loses the neighbour block's edge (hard-ham-1 0.938 against 0.956). With `input: null` too, a package
 * holds nothing but the layers' means and precisions.
 */
import { spread } from '../data/split.js';
import { UnlearningError } from './errors.js';
import type { LayerFeatures, Pooling } from './features.js';
import { checkLayers } from './features.js';
import type { NgramSpec, SparseRows } from './ngrams.js';
import { checkNgramSpec, sameNgramSpec, sparseRows } from './ngrams.js';
import type { NeighbourBank } from './neighbours.js';
import { neighbourBank, neighbourDistances, referenceK } from './neighbours.js';
import { columnMeans, logisticRegression, quantile, shrinkagePrecision } from './stats.js';

export interface DetectorConfig {
  readonly layers: readonly number[] | 'all'; // base hidden states scored (0 = embeddings, ℓ = after block ℓ − 1)
  readonly pooling: Pooling; // how a layer's tokens become one feature vector (features.ts)
  readonly reference: boolean; // also model the generic inputs (relative Mahalanobis; see the header)
  readonly bank: boolean; // keep D_t's normalised features (see the header for what that reveals)
  readonly input: NgramSpec | null; // the input block: hashed token n-grams (ngrams.ts), or none; read where features are extracted
  readonly neighbours: number; // k: the input block scored by its k nearest rows (neighbours.ts; needs `bank`), 0: by its Gaussian
  readonly neighbourRows: number; // most rows each neighbour bank keeps, spread evenly over its set
  readonly combination: 'logistic' | 'difference'; // how components become z: fitted weights, or Σ_j w_j (d_out,j − d_in,j) (header)
  readonly ridge: number; // L2 penalty of the component-combination logistic regression (standardised components)
  readonly folds: number; // cross-fitting folds for the calibration scores
}

export const DEFAULT_DETECTOR: DetectorConfig = Object.freeze({
  // The embedding output alone: no second base forward at serving time (a deeper layer of the frozen base costs one,
  // since the served forward runs with adapters). Pooled mean+std, relative: held-out AUROC on SpamAssassin with the
  // tiny base 0.82–0.89 per group at 128 tokens (mean 0.85), against 0.54–0.75 for the mean-pooled plain Mahalanobis
  // distance. mean+std+max+min reaches 0.81–0.89 (mean 0.86; hard-ham-1 0.88), and on every layer ('all') 0.87–0.92
  // (mean 0.89) for a second base forward per served batch — but with max and min the gate let unrelated short text through
  // in the e2e test (a small forget set, a random base), so they stay an option (BENCHMARKS.md, Unlearning).
  layers: [0],
  pooling: 'mean+std',
  reference: true,
  bank: true,
  // Byte 3- and 4-grams in 1,024 buckets: held-out AUROC 0.88–0.95 per group alone (mean 0.93; hard-ham-1 0.936)
  // and with the embedding layer (hard-ham-1 0.938), at no forward cost; 512 buckets, words, byte bigrams, other
  // orders or log counts did no better, naive Bayes on the same counts far worse (BENCHMARKS.md, Unlearning).
  input: Object.freeze({ orders: Object.freeze([3, 4]), buckets: 1024 }),
  // Relative distances to the 5 nearest profiles of D_t and of the generic inputs: held-out AUROC 0.89–0.96 per group
  // (mean 0.933; hard-ham-1 0.956) against the block's Gaussian 0.88–0.95 (mean 0.925; 0.938); k = 3 or 10 did no
  // better, nor 4,096 buckets or orders 2–5, nor 32–128 k-means centroids in place of the generic rows (BENCHMARKS.md).
  neighbours: 5,
  // Bounds the package (4 KiB a row) and the serving cost (~1.5 µs a row per served batch of 32 on one core). Fewer rows
  // cost AUROC: with 1,000 or 500 forget rows, easy-ham-1 (1,986 in its train split) fell from 0.958 to 0.943 or 0.923.
  neighbourRows: 2000,
  // The plain relative distance beat the fitted combination on every SpamAssassin group (0.82–0.89 against
  // 0.78–0.84 held-out AUROC): with two components the regression mostly fits the calibration split's quirks.
  combination: 'difference',
  ridge: 1e-2,
  folds: 5,
});

/** A Gaussian model of one set of features: mean [F], shrinkage precision [F, F] row-major, Ledoit–Wolf ρ. */
export interface GaussianStats {
  readonly mean: Float32Array;
  readonly precision: Float32Array;
  readonly shrinkage: number; // ρ ∈ [0, 1] (informational)
}

export interface DetectorLayer extends GaussianStats {
  readonly layer: number; // hidden-state index (0 = embeddings)
  readonly bank?: Float32Array; // [m, F] centred (− mean), L2-normalised forget features, absent when bank-free
  readonly reference?: GaussianStats; // the generic inputs' model, when the detector is relative
}

/** The input block (ngrams.ts) as a Gaussian model of its features: aggregates only, the bank-free form. */
export interface GaussianInputBlock extends GaussianStats {
  readonly kind: 'gaussian';
  readonly ngrams: NgramSpec; // feature width = ngrams.buckets
  readonly reference?: GaussianStats; // present exactly when the layers have one
}

/** The input block as banks of n-gram profiles, scored by their k nearest rows (neighbours.ts). */
export interface NeighbourInputBlock {
  readonly kind: 'neighbours';
  readonly ngrams: NgramSpec;
  readonly k: number;
  readonly bank: Float32Array; // [m, W] D_t's profiles, W = ngrams.buckets
  readonly reference?: NeighbourReference; // present exactly when the layers have one
}

/** The generic inputs' profiles [m', W] (theirs and the public snippets'). */
export interface NeighbourReference {
  readonly bank: Float32Array;
}

export type InputBlock = GaussianInputBlock | NeighbourInputBlock;

export interface Detector {
  readonly dim: number; // F
  readonly pooling: Pooling;
  readonly bankSize: number; // m (0 when bank-free)
  readonly layers: readonly DetectorLayer[]; // all with a reference, or none
  readonly input?: InputBlock; // scored after the layers
  readonly weights: Float32Array; // [(L + 1 if input)·K]: per block (a) or (a, b); K = 2 with a reference, else 1
  readonly bias: number; // c
}

/** A Gaussian block's statistics: a hidden-state layer or the Gaussian input block. */
type Block = GaussianStats & { readonly reference?: GaussianStats };

/** The generic inputs' side of every block: the layers' Gaussian models, then the input block's model or bank. */
interface References {
  readonly layers: readonly GaussianStats[];
  readonly input?: { readonly kind: 'gaussian'; readonly stats: GaussianStats } | ({ readonly kind: 'neighbours' } & NeighbourReference);
}

/** Rows of the input block in `blockData`'s dense layout. */
interface Rows {
  readonly x: Float32Array;
  readonly d: number;
}

/** Each layer's features and the input block's: [n, width] rows and the width. */
function blockData(feats: LayerFeatures): { layers: Rows[]; input?: Rows } {
  const layers = feats.data.map((x) => ({ x, d: feats.dim }));
  return feats.input ? { layers, input: { x: feats.input.data, d: feats.input.spec.buckets } } : { layers };
}

/** Blocks in component order: the layers, then the input block. */
const blockCount = (d: Pick<Detector, 'layers' | 'input'>): number => d.layers.length + (d.input ? 1 : 0);

/** Components per layer: 2 with a reference model (d_in, d_out), else 1 (d_in). */
export function componentsPerLayer(detector: Pick<Detector, 'layers'>): number {
  return detector.layers[0]?.reference ? 2 : 1;
}

/** Resolves `config.layers` for a model with `nLayer` blocks. */
export function detectorLayers(config: DetectorConfig, nLayer: number): number[] {
  const layers = config.layers === 'all' ? Array.from({ length: nLayer + 1 }, (_, i) => i) : [...config.layers];
  checkLayers(layers, nLayer);
  return layers;
}

function gaussian(x: Float32Array, n: number, d: number): GaussianStats & { mean64: Float64Array } {
  const mean = columnMeans(x, n, d);
  const { precision, shrinkage } = shrinkagePrecision(x, n, d, mean);
  return { mean: Float32Array.from(mean), mean64: mean, precision: Float32Array.from(precision), shrinkage };
}

function gatherRows(x: Float32Array, rows: readonly number[], d: number): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => out.set(x.subarray(r * d, (r + 1) * d), i * d));
  return out;
}

function normaliseCentred(x: Float32Array, n: number, d: number, mean: Float64Array): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += (x[i * d + k]! - mean[k]!) ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let k = 0; k < d; k++) out[i * d + k] = (x[i * d + k]! - mean[k]!) * inv;
  }
  return out;
}

const stripMean = ({ mean64: _unused, ...stats }: GaussianStats & { mean64: Float64Array }): GaussianStats => stats;

/** How the input block is scored: by the k nearest of at most `limit` rows per bank, or (undefined) by its Gaussian. */
interface Neighbours {
  readonly k: number;
  readonly limit: number;
}

/** The generic inputs' side of every block, from the rows `outRows` of `outFeats`. */
function fitReferences(outFeats: LayerFeatures, outRows: readonly number[], neighbours: Neighbours | undefined): References {
  const data = blockData(outFeats);
  const layers = data.layers.map(({ x, d }) => stripMean(gaussian(gatherRows(x, outRows, d), outRows.length, d)));
  if (!data.input) return { layers };
  const { x, d } = data.input;
  if (neighbours) return { layers, input: { kind: 'neighbours', bank: gatherRows(x, spread(outRows, neighbours.limit), d) } };
  return { layers, input: { kind: 'gaussian', stats: stripMean(gaussian(gatherRows(x, outRows, d), outRows.length, d)) } };
}

/** Per-block statistics of the forget features at `inRows`, with the generic inputs' `references` when relative. */
function fitBlocks(inFeats: LayerFeatures, inRows: readonly number[], references: References | undefined, bank: boolean, neighbours: Neighbours | undefined): Pick<Detector, 'layers' | 'input'> {
  const data = blockData(inFeats);
  const layers = data.layers.map(({ x, d }, j): DetectorLayer => {
    const rows = gatherRows(x, inRows, d);
    const { mean64, ...stats } = gaussian(rows, inRows.length, d);
    return {
      layer: inFeats.layers[j]!,
      ...stats,
      ...(references ? { reference: references.layers[j]! } : {}),
      ...(bank ? { bank: normaliseCentred(rows, inRows.length, d, mean64) } : {}),
    };
  });
  if (!data.input || !inFeats.input) return { layers };
  const { x, d } = data.input;
  const ngrams = inFeats.input.spec;
  const reference = references?.input;
  if (neighbours) {
    const bankRows = gatherRows(x, spread(inRows, neighbours.limit), d);
    return { layers, input: { kind: 'neighbours', ngrams, k: neighbours.k, bank: bankRows, ...(reference?.kind === 'neighbours' ? { reference: { bank: reference.bank } } : {}) } };
  }
  const stats = stripMean(gaussian(gatherRows(x, inRows, d), inRows.length, d));
  return { layers, input: { kind: 'gaussian', ngrams, ...stats, ...(reference?.kind === 'gaussian' ? { reference: reference.stats } : {}) } };
}

/** `blocks` with the references replaced. */
function withReferences(blocks: Pick<Detector, 'layers' | 'input'>, references: References): Pick<Detector, 'layers' | 'input'> {
  const layers = blocks.layers.map(({ bank: _bank, ...l }, k) => ({ ...l, reference: references.layers[k]! }));
  const ref = references.input;
  if (!blocks.input || !ref) return { layers };
  const input: InputBlock =
    blocks.input.kind === 'neighbours'
      ? { ...blocks.input, ...(ref.kind === 'neighbours' ? { reference: { bank: ref.bank } } : {}) }
      : { ...blocks.input, ...(ref.kind === 'gaussian' ? { reference: ref.stats } : {}) };
  return { layers, input };
}

/** (f − μ)ᵀ P (f − μ) / F for one row f. */
function distance(f: Float32Array, g: GaussianStats, d: number): number {
  const c = new Float64Array(d);
  for (let k = 0; k < d; k++) c[k] = f[k]! - g.mean[k]!;
  let s = 0;
  for (let a = 0; a < d; a++) {
    let t = 0;
    const row = a * d;
    for (let b = 0; b < d; b++) t += g.precision[row + b]! * c[b]!;
    s += t * c[a]!;
  }
  return s / d;
}

/** Score components [rows.length, B·K] of `feats` at `rows` under `blocks` (host, float64). */
function components(blocks: Pick<Detector, 'layers' | 'input'>, feats: LayerFeatures, rows: readonly number[]): Float64Array {
  const data = blockData(feats);
  const k = componentsPerLayer(blocks);
  const width = blockCount(blocks) * k;
  const out = new Float64Array(rows.length * width);
  const gaussians: [Block, Rows][] = blocks.layers.map((l, j) => [l, data.layers[j]!]);
  if (blocks.input?.kind === 'gaussian') gaussians.push([blocks.input, data.input!]);
  rows.forEach((r, i) => {
    gaussians.forEach(([g, { x, d }], j) => {
      const f = x.subarray(r * d, (r + 1) * d);
      out[i * width + j * k] = distance(f, g, d);
      if (g.reference) out[i * width + j * k + 1] = distance(f, g.reference, d);
    });
  });
  if (blocks.input?.kind === 'neighbours') {
    const { x, d } = data.input!;
    const j = blocks.layers.length;
    const scored = neighbourComponents(blocks.input, sparseRows(gatherRows(x, rows, d), rows.length, d));
    scored.forEach((values, c) => values.forEach((v, i) => (out[i * width + j * k + c] = v)));
  }
  return out;
}

/**
 * Laid-out banks by the rows they were built from. Cross-fitting keeps one side's bank while the other's folds change
 * (the generic bank through the forget folds, D_t's through the generic folds), and a layout of 2,000 rows costs
 * ~30 ms; block rows are never modified once fitted or loaded, and a bank goes with its rows.
 */
const laidOut = new WeakMap<Float32Array, NeighbourBank>();

function bankOf(rows: Float32Array, width: number): NeighbourBank {
  let bank = laidOut.get(rows);
  if (bank === undefined) {
    bank = neighbourBank(rows, rows.length / width, width);
    laidOut.set(rows, bank);
  }
  return bank;
}

/** The neighbour block's searches: D_t's bank with k, then, when relative, the generic bank with its k (referenceK). */
export function neighbourSearches(block: NeighbourInputBlock): { bank: NeighbourBank; k: number }[] {
  const w = block.ngrams.buckets;
  const searches = [{ bank: bankOf(block.bank, w), k: block.k }];
  if (block.reference) {
    const reference = bankOf(block.reference.bank, w);
    searches.push({ bank: reference, k: referenceK(block.k, searches[0]!.bank.rows, reference.rows) });
  }
  return searches;
}

/** The neighbour block's components of sparse rows: distances to D_t's bank, and to the generic bank when relative. */
function neighbourComponents(block: NeighbourInputBlock, rows: SparseRows): Float64Array[] {
  return neighbourSearches(block).map(({ bank, k }) => neighbourDistances(bank, rows, k));
}

function folded(n: number, folds: number): number[][] {
  return Array.from({ length: folds }, (_, f) => Array.from({ length: n }, (_, i) => i).filter((i) => i % folds === f));
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Detector outputs for a set of examples: the logits z and the support distances (mean over layers of d_in). */
export interface ScoredSet {
  readonly scores: Float64Array;
  readonly distances: Float64Array;
}

export interface FittedDetector {
  readonly detector: Detector;
  readonly heldIn: ScoredSet; // the forget examples, cross-fitted (see fitDetector)
  readonly out: ScoredSet; // the generic examples, cross-fitted when the detector has a reference
}

/**
 * Fits request t's detector on the forget features `inFeats` and calibrates its combination against generic inputs
 * `outFeats` (e.g. the client's other local data). Both must come from the same layers, pooling and input block;
 * the detector has an input block when they have one.
 *
 * Calibration scores are cross-fitted over `folds` folds: each fold of the forget examples is scored by statistics
 * fitted on the other folds (and likewise the generic examples, when they have a model of their own). Scoring an
 * example with statistics that contain it flatters it — with n ≈ F the in-sample Mahalanobis distance is far below a
 * new example's — and a combination and gate calibrated on such scores would misjudge unseen inputs.
 */
export function fitDetector(inFeats: LayerFeatures, outFeats: LayerFeatures, config: DetectorConfig = DEFAULT_DETECTOR): FittedDetector {
  const folds = config.folds;
  if (!Number.isInteger(folds) || folds < 2) throw new UnlearningError(`folds must be an integer ≥ 2, got ${folds}`, 'bad_option');
  if (inFeats.n < 2 * folds) throw new UnlearningError(`the detector needs at least ${2 * folds} forget examples (2 per fold), got ${inFeats.n}`, 'bad_data');
  if (outFeats.n < 2 * folds) throw new UnlearningError(`the detector needs at least ${2 * folds} generic examples (2 per fold), got ${outFeats.n}`, 'bad_data');
  if (inFeats.layers.join() !== outFeats.layers.join() || inFeats.dim !== outFeats.dim || inFeats.pooling !== outFeats.pooling || !sameNgramSpec(inFeats.input?.spec, outFeats.input?.spec)) {
    throw new UnlearningError('forget and generic features must come from the same layers and pooling, and the same input block', 'bad_data');
  }
  if (inFeats.input) checkNgramSpec(inFeats.input.spec);
  if (!Number.isInteger(config.neighbours) || config.neighbours < 0) throw new UnlearningError(`neighbours must be an integer ≥ 0, got ${config.neighbours}`, 'bad_option');
  if (!Number.isInteger(config.neighbourRows) || config.neighbourRows < 1) throw new UnlearningError(`neighbourRows must be an integer ≥ 1, got ${config.neighbourRows}`, 'bad_option');
  const neighbours = inFeats.input && config.neighbours > 0 ? { k: config.neighbours, limit: config.neighbourRows } : undefined;
  if (neighbours && !config.bank) {
    throw new UnlearningError("the input block's nearest-neighbour scoring keeps rows of D_t and of the generic inputs: it needs bank: true, or neighbours: 0", 'bad_option');
  }
  const allIn = range(inFeats.n);
  const allOut = range(outFeats.n);
  const references = config.reference ? fitReferences(outFeats, allOut, neighbours) : undefined;
  const full = fitBlocks(inFeats, allIn, references, config.bank, neighbours);
  const blocks = blockCount(full);
  const k = componentsPerLayer(full);
  const width = blocks * k;

  const inComp = new Float64Array(inFeats.n * width);
  for (const held of folded(inFeats.n, folds)) {
    const rest = allIn.filter((i) => !held.includes(i));
    const part = components(fitBlocks(inFeats, rest, references, false, neighbours), inFeats, held);
    held.forEach((row, i) => inComp.set(part.subarray(i * width, (i + 1) * width), row * width));
  }
  let outComp: Float64Array;
  if (config.reference) {
    outComp = new Float64Array(outFeats.n * width);
    for (const held of folded(outFeats.n, folds)) {
      const rest = allOut.filter((i) => !held.includes(i));
      const part = components(withReferences(full, fitReferences(outFeats, rest, neighbours)), outFeats, held);
      held.forEach((row, i) => outComp.set(part.subarray(i * width, (i + 1) * width), row * width));
    }
  } else {
    outComp = components(full, outFeats, allOut);
  }

  // Logistic regression on standardised components (pooled over both classes), mapped back to raw ones.
  const total = inFeats.n + outFeats.n;
  const mu = new Float64Array(width);
  const sd = new Float64Array(width);
  for (const rows of [inComp, outComp]) for (let i = 0; i < rows.length; i++) mu[i % width]! += rows[i]! / total;
  for (const rows of [inComp, outComp]) for (let i = 0; i < rows.length; i++) sd[i % width]! += (rows[i]! - mu[i % width]!) ** 2 / total;
  for (let j = 0; j < width; j++) sd[j] = Math.sqrt(sd[j]!) || 1;
  const standardise = (rows: Float64Array): Float64Array => rows.map((v, i) => (v - mu[i % width]!) / sd[i % width]!);
  const weights = new Float32Array(width);
  let bias = 0;
  if (config.combination === 'difference' && k === 2) {
    // Each block's d_out − d_in weighted by its separation over its spread², from the cross-fitted scores (see the
    // header): a wide, sparse input block's differences run far larger than a layer's and would otherwise decide
    // alone, and a block that separates worse should count less. A block that does not separate at all gets 0.
    // A neighbour input block decides alone: the layers, at any such weight, only lowered its held-out AUROC
    // (hard-ham-1 0.960 alone, 0.943 with the embedding layer; BENCHMARKS.md, Unlearning).
    const diff = (comp: Float64Array, n: number, j: number): Float64Array => Float64Array.from({ length: n }, (_, i) => comp[i * width + 2 * j + 1]! - comp[i * width + 2 * j]!);
    const scale = Array.from({ length: blocks }, (_, j) => {
      if (full.input?.kind === 'neighbours') return j === blocks - 1 ? 1 : 0;
      const out = diff(outComp, outFeats.n, j);
      const spread = quantile(out, 0.75) - quantile(out, 0.25) || 1;
      const gap = quantile(diff(inComp, inFeats.n, j), 0.5) - quantile(out, 0.5);
      return Math.max(gap, 0) / (spread * spread);
    });
    const separates = scale.some((v) => v > 0);
    for (let j = 0; j < blocks; j++) {
      const w = separates ? scale[j]! : 1 / blocks; // none separates: the plain mean of the differences
      [weights[2 * j], weights[2 * j + 1]] = [-w, w];
    }
  } else {
    const fit = logisticRegression(standardise(inComp), standardise(outComp), width, config.ridge);
    bias = fit.bias;
    for (let j = 0; j < width; j++) {
      weights[j] = fit.weights[j]! / sd[j]!;
      bias -= (fit.weights[j]! * mu[j]!) / sd[j]!;
    }
  }
  const detector: Detector = { dim: inFeats.dim, pooling: inFeats.pooling, bankSize: config.bank ? inFeats.n : 0, ...full, weights, bias };
  const layers = full.layers.length;
  return {
    detector,
    heldIn: { scores: combine(detector, inComp), distances: inDistances(inComp, layers, width, k) },
    out: { scores: combine(detector, outComp), distances: inDistances(outComp, layers, width, k) },
  };
}

/**
 * The support distance of each row of components [n, width]: the mean over the hidden-state layers of d_in (the
 * input block's d_in is left out: the gate's support bound was calibrated on the layers' distances).
 */
function inDistances(comp: Float64Array, layers: number, width: number, k: number): Float64Array {
  return Float64Array.from({ length: comp.length / width }, (_, i) => {
    let s = 0;
    for (let j = 0; j < layers; j++) s += comp[i * width + j * k]!;
    return s / layers;
  });
}

/** z = Σ_j w_j component_j + c for components [n, L·K]. */
function combine(detector: Detector, comp: Float64Array): Float64Array {
  const width = detector.weights.length;
  return Float64Array.from({ length: comp.length / width }, (_, i) => {
    let z = detector.bias;
    for (let j = 0; j < width; j++) z += detector.weights[j]! * comp[i * width + j]!;
    return z;
  });
}
