/**
 * An unlearning package: everything a server needs to serve request t, as one blob (the coordinator stores blobs by
 * SHA-256). The blob is a safetensors file:
 *   - the unlearning adapter's tensors under their usual names (h.{i}.{module}.lora_A.weight / lora_B.weight);
 *   - the detector, F = C (mean pooling), 2C (mean+std) or 4C (mean+std+max+min): detector.{ℓ}.mean [F],
 *     detector.{ℓ}.precision [F, F], detector.{ℓ}.bank [m, F] (absent when bank-free),
 *     detector.{ℓ}.reference_mean [F] and detector.{ℓ}.reference_precision [F, F] (present when the detector is
 *     relative), detector.weights [(L + 1 with an input block)·K]; with an input block (format 4, ngrams.ts) also
 *     detector.input.mean [W], detector.input.precision [W, W] and, when relative, detector.input.reference_mean [W]
 *     and detector.input.reference_precision [W, W], W = its bucket count; or (format 5, scored by nearest
 *     neighbours, neighbours.ts) detector.input.bank [m, W] and, when relative, detector.input.reference_bank [m', W];
 *   - metadata key `lethe.unlearning`: JSON with the format version, t, the base geometry, the LoRA config, the
 *     detector's scalars, the gate and the metrics.
 * Decoding validates everything before anything is served: shapes against the base geometry, finite values, and the
 * adapter's orthogonality to the earlier requests' adapters — each failure a PackageError with its own code.
 */
import type { GPT2Config } from '../model/gpt2.js';
import type { LoraConfig } from '../model/lora.js';
import { validateAdapter, validateLoraConfig } from '../model/lora.js';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { nonFiniteTensors } from '../tensors/host.js';
import { decodeSafetensors, encodeSafetensors } from '../tensors/safetensors.js';
import type { Detector, DetectorLayer, InputBlock } from './detector.js';
import { POOLINGS, featureDim, type Pooling } from './features.js';
import { PackageError } from './errors.js';
import type { NgramSpec } from './ngrams.js';
import { checkNgramSpec } from './ngrams.js';
import type { Gate } from './gate.js';
import { maxOverlap } from './orthogonality.js';

/**
 * The newest format. 5: the input block scored by nearest neighbours (its banks). 4: the detector's input block
 * (hashed token n-grams). 3: the mean+std+max+min pooling. 2: pooled mean+std features, the generic inputs' reference
 * statistics, per-component weights (1: mean-pooled). Each format's packages are the next one's without its addition:
 * older ones still load, and a package is written as the oldest format that holds it, which older builds read.
 */
export const PACKAGE_FORMAT = 5;
const READABLE_FORMATS: ReadonlyMap<number, { readonly poolings: readonly Pooling[]; readonly input: readonly InputBlock['kind'][] }> = new Map([
  [2, { poolings: ['mean', 'mean+std'], input: [] }],
  [3, { poolings: POOLINGS, input: [] }],
  [4, { poolings: POOLINGS, input: ['gaussian'] }],
  [5, { poolings: POOLINGS, input: ['gaussian', 'neighbours'] }],
]);
const METADATA_KEY = 'lethe.unlearning';

export interface UnlearningPackage {
  readonly index: number; // t, from 1
  readonly lora: LoraConfig;
  readonly adapter: Map<string, HostTensor>;
  readonly detector: Detector;
  readonly gate: Gate;
  readonly metrics: Readonly<Record<string, number>>;
}

interface GaussianInputHeader {
  shrinkage: number;
  referenceShrinkage?: number;
}

interface NeighbourInputHeader {
  neighbours: number; // k
  bankSize: number; // m
  referenceSize?: number; // m', when relative
}

interface Header {
  format: number;
  index: number;
  model: { nEmbd: number; nLayer: number };
  lora: LoraConfig;
  detector: {
    dim: number;
    pooling: Pooling;
    bankSize: number;
    bias: number;
    layers: { layer: number; shrinkage: number; referenceShrinkage?: number }[];
    input?: NgramSpec & (GaussianInputHeader | NeighbourInputHeader);
  };
  gate: Gate;
  metrics: Record<string, number>;
}

/** The package as bytes. `model` is the base it was built for (its width and depth are recorded and checked on load). */
export function encodeUnlearningPackage(pkg: UnlearningPackage, model: GPT2Config): Uint8Array {
  const d = pkg.detector;
  const tensors = new Map<string, HostTensor>(pkg.adapter);
  for (const l of d.layers) {
    tensors.set(`detector.${l.layer}.mean`, { shape: [d.dim], data: l.mean });
    tensors.set(`detector.${l.layer}.precision`, { shape: [d.dim, d.dim], data: l.precision });
    if (l.bank) tensors.set(`detector.${l.layer}.bank`, { shape: [d.bankSize, d.dim], data: l.bank });
    if (l.reference) {
      tensors.set(`detector.${l.layer}.reference_mean`, { shape: [d.dim], data: l.reference.mean });
      tensors.set(`detector.${l.layer}.reference_precision`, { shape: [d.dim, d.dim], data: l.reference.precision });
    }
  }
  const input = d.input;
  if (input?.kind === 'gaussian') {
    const w = input.ngrams.buckets;
    tensors.set('detector.input.mean', { shape: [w], data: input.mean });
    tensors.set('detector.input.precision', { shape: [w, w], data: input.precision });
    if (input.reference) {
      tensors.set('detector.input.reference_mean', { shape: [w], data: input.reference.mean });
      tensors.set('detector.input.reference_precision', { shape: [w, w], data: input.reference.precision });
    }
  } else if (input) {
    const w = input.ngrams.buckets;
    tensors.set('detector.input.bank', { shape: [input.bank.length / w, w], data: input.bank });
    if (input.reference) tensors.set('detector.input.reference_bank', { shape: [input.reference.bank.length / w, w], data: input.reference.bank });
  }
  tensors.set('detector.weights', { shape: [d.weights.length], data: d.weights });
  const header: Header = {
    format: Math.min(...[...READABLE_FORMATS].filter(([, f]) => f.poolings.includes(d.pooling) && (!input || f.input.includes(input.kind))).map(([format]) => format)),
    index: pkg.index,
    model: { nEmbd: model.nEmbd, nLayer: model.nLayer },
    lora: { ...pkg.lora, targets: [...pkg.lora.targets] },
    detector: {
      dim: d.dim,
      pooling: d.pooling,
      bankSize: d.bankSize,
      bias: d.bias,
      layers: d.layers.map((l) => ({ layer: l.layer, shrinkage: l.shrinkage, ...(l.reference ? { referenceShrinkage: l.reference.shrinkage } : {}) })),
      ...(input ? { input: { orders: [...input.ngrams.orders], buckets: input.ngrams.buckets, ...inputHeader(input) } } : {}),
    },
    gate: { ...pkg.gate },
    metrics: { ...pkg.metrics },
  };
  return encodeSafetensors(tensors, { [METADATA_KEY]: JSON.stringify(header) });
}

/** The input block's scalars in the header. */
function inputHeader(input: InputBlock): GaussianInputHeader | NeighbourInputHeader {
  const w = input.ngrams.buckets;
  if (input.kind === 'gaussian') return { shrinkage: input.shrinkage, ...(input.reference ? { referenceShrinkage: input.reference.shrinkage } : {}) };
  return { neighbours: input.k, bankSize: input.bank.length / w, ...(input.reference ? { referenceSize: input.reference.bank.length / w } : {}) };
}

export interface DecodeOptions {
  readonly model: GPT2Config; // the base the package will be served on
  readonly priors?: readonly TensorMap[]; // earlier requests' adapters (t − 1 of them, in order), for the orthogonality check
  readonly maxOverlap?: number; // largest allowed ‖A_i A_tᵀ‖_F / (‖A_i‖_F ‖A_t‖_F); default 0.05
}

function parseHeader(metadata: Record<string, string>): Header {
  const raw = metadata[METADATA_KEY];
  if (raw === undefined) throw new PackageError(`not an unlearning package: no "${METADATA_KEY}" metadata`, 'bad_format');
  let header: Header;
  try {
    header = JSON.parse(raw) as Header;
  } catch (err) {
    throw new PackageError(`the package's "${METADATA_KEY}" metadata is not JSON: ${(err as Error).message}`, 'bad_format', { cause: err });
  }
  if (!READABLE_FORMATS.has(header.format)) {
    throw new PackageError(
      `unlearning package format ${String(header.format)} is not supported (this build reads ${[...READABLE_FORMATS.keys()].join(', ').replace(/, (\d+)$/, ' and $1')}); rebuild the package`,
      'bad_version',
    );
  }
  const { detector, gate } = header;
  if (!detector || !gate || !header.lora || !header.model || !Array.isArray(detector.layers)) {
    throw new PackageError('the package metadata lacks its model, lora, detector or gate section', 'bad_format');
  }
  const scalars: Record<string, unknown> = {
    'detector.bias': detector.bias,
    'gate.center': gate.center,
    'gate.slope': gate.slope,
    'gate.cutoff': gate.cutoff,
    'gate.memberCos': gate.memberCos,
    'gate.maxDistance': gate.maxDistance,
    ...Object.fromEntries(detector.layers.map((l) => [`detector.${l.layer}.shrinkage`, l.shrinkage])),
    ...Object.fromEntries(detector.layers.filter((l) => 'referenceShrinkage' in l).map((l) => [`detector.${l.layer}.referenceShrinkage`, l.referenceShrinkage])),
    ...(detector.input && !('neighbours' in detector.input) ? { 'detector.input.shrinkage': detector.input.shrinkage } : {}),
    ...(detector.input && 'referenceShrinkage' in detector.input ? { 'detector.input.referenceShrinkage': detector.input.referenceShrinkage } : {}),
  };
  for (const [name, v] of Object.entries(scalars)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new PackageError(`package parameter ${name} is ${String(v)}, not a finite number`, 'non_finite');
  }
  if (!(gate.slope > 0)) throw new PackageError(`gate slope must be positive, got ${gate.slope}`, 'bad_format');
  if (!Number.isInteger(header.index) || header.index < 1) throw new PackageError(`package index t must be a positive integer, got ${header.index}`, 'bad_format');
  return header;
}

function take(tensors: Map<string, HostTensor>, name: string, shape: readonly number[]): HostTensor {
  const t = tensors.get(name);
  if (!t) throw new PackageError(`the package lacks tensor ${name}`, 'bad_shape');
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new PackageError(`package tensor ${name} is [${t.shape.join(', ')}], expected [${shape.join(', ')}]`, 'bad_shape');
  }
  tensors.delete(name);
  return t;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1;

/** The detector's input block from its header and tensors (taken out of `tensors`). */
function decodeInputBlock(
  h: NonNullable<Header['detector']['input']>,
  tensors: Map<string, HostTensor>,
  relative: boolean,
  kinds: readonly InputBlock['kind'][],
  format: number,
): InputBlock {
  const ngrams: NgramSpec = { orders: h.orders, buckets: h.buckets };
  try {
    checkNgramSpec(ngrams);
  } catch (err) {
    throw new PackageError(`the detector's input block: ${(err as Error).message}`, 'bad_format', { cause: err });
  }
  const kind = 'neighbours' in h ? 'neighbours' : 'gaussian';
  if (!kinds.includes(kind)) throw new PackageError(`format ${format} packages have no ${kind === 'gaussian' ? '' : `${kind} `}detector input block`, 'bad_format');
  const spec = { orders: Object.freeze([...ngrams.orders]), buckets: ngrams.buckets };
  const w = ngrams.buckets;
  if ('neighbours' in h) {
    if (!isCount(h.neighbours) || !isCount(h.bankSize) || (h.referenceSize !== undefined && !isCount(h.referenceSize))) {
      throw new PackageError(`the detector input block's neighbours, bank size and reference size must be positive integers, got ${h.neighbours}, ${h.bankSize}, ${h.referenceSize}`, 'bad_format');
    }
    if ((h.referenceSize !== undefined) !== relative) throw new PackageError('the detector input block must have a reference exactly when the layers do', 'bad_format');
    return {
      kind: 'neighbours',
      ngrams: spec,
      k: h.neighbours,
      bank: take(tensors, 'detector.input.bank', [h.bankSize, w]).data,
      ...(h.referenceSize !== undefined ? { reference: { bank: take(tensors, 'detector.input.reference_bank', [h.referenceSize, w]).data } } : {}),
    };
  }
  if ((h.referenceShrinkage !== undefined) !== relative) throw new PackageError('the detector input block must have a reference exactly when the layers do', 'bad_format');
  return {
    kind: 'gaussian',
    ngrams: spec,
    shrinkage: h.shrinkage,
    mean: take(tensors, 'detector.input.mean', [w]).data,
    precision: take(tensors, 'detector.input.precision', [w, w]).data,
    ...(h.referenceShrinkage !== undefined
      ? {
          reference: {
            mean: take(tensors, 'detector.input.reference_mean', [w]).data,
            precision: take(tensors, 'detector.input.reference_precision', [w, w]).data,
            shrinkage: h.referenceShrinkage,
          },
        }
      : {}),
  };
}

/** Decodes and validates a package (see the header for the checks). Throws PackageError. */
export function decodeUnlearningPackage(bytes: Uint8Array, opts: DecodeOptions): UnlearningPackage {
  let contents: ReturnType<typeof decodeSafetensors>;
  try {
    contents = decodeSafetensors(bytes);
  } catch (err) {
    throw new PackageError(`not an unlearning package: ${(err as Error).message}`, 'bad_format', { cause: err });
  }
  const header = parseHeader(contents.metadata);
  const { model } = opts;
  if (header.model.nEmbd !== model.nEmbd || header.model.nLayer !== model.nLayer) {
    throw new PackageError(
      `the package was built for a base of width ${header.model.nEmbd} and ${header.model.nLayer} layers, not ${model.nEmbd} and ${model.nLayer}`,
      'wrong_model',
    );
  }
  const bad = nonFiniteTensors(contents.tensors);
  if (bad.length > 0) throw new PackageError(`package tensor(s) hold NaN or Infinity: ${bad.slice(0, 8).join(', ')}`, 'non_finite');

  const tensors = new Map(contents.tensors);
  const d = header.detector;
  const { poolings, input: inputKinds } = READABLE_FORMATS.get(header.format)!;
  if (!poolings.includes(d.pooling)) {
    throw new PackageError(`detector pooling ${JSON.stringify(d.pooling)} is not one of format ${header.format}'s: ${poolings.join(', ')}`, 'bad_format');
  }
  if (d.dim !== featureDim(model.nEmbd, d.pooling) || !Number.isInteger(d.bankSize) || d.bankSize < 0) {
    throw new PackageError(`detector width ${d.dim} / bank size ${d.bankSize} do not fit a base of width ${model.nEmbd} with ${d.pooling} pooling`, 'bad_shape');
  }
  const relative = d.layers.some((l) => l.referenceShrinkage !== undefined);
  if (relative && !d.layers.every((l) => l.referenceShrinkage !== undefined)) throw new PackageError('detector layers must all have a reference, or none', 'bad_format');
  const layers: DetectorLayer[] = d.layers.map(({ layer, shrinkage, referenceShrinkage }) => {
    if (!Number.isInteger(layer) || layer < 0 || layer > model.nLayer) throw new PackageError(`detector layer ${layer} is not a hidden state of the base`, 'bad_shape');
    const bankName = `detector.${layer}.bank`;
    const hasBank = tensors.has(bankName);
    if (hasBank !== d.bankSize > 0) throw new PackageError(`detector layer ${layer}: bank ${hasBank ? 'present' : 'absent'} but bank size ${d.bankSize}`, 'bad_shape');
    return {
      layer,
      shrinkage,
      mean: take(tensors, `detector.${layer}.mean`, [d.dim]).data,
      precision: take(tensors, `detector.${layer}.precision`, [d.dim, d.dim]).data,
      ...(hasBank ? { bank: take(tensors, bankName, [d.bankSize, d.dim]).data } : {}),
      ...(referenceShrinkage !== undefined
        ? {
            reference: {
              mean: take(tensors, `detector.${layer}.reference_mean`, [d.dim]).data,
              precision: take(tensors, `detector.${layer}.reference_precision`, [d.dim, d.dim]).data,
              shrinkage: referenceShrinkage,
            },
          }
        : {}),
    };
  });
  const input = d.input === undefined ? undefined : decodeInputBlock(d.input, tensors, relative, inputKinds, header.format);
  const detector: Detector = {
    dim: d.dim,
    pooling: d.pooling,
    bankSize: d.bankSize,
    layers,
    ...(input ? { input } : {}),
    weights: take(tensors, 'detector.weights', [(layers.length + (input ? 1 : 0)) * (relative ? 2 : 1)]).data,
    bias: d.bias,
  };
  const lora: LoraConfig = Object.freeze({ ...header.lora, targets: Object.freeze([...header.lora.targets]) });
  try {
    validateLoraConfig(lora);
    validateAdapter(tensors, model, lora); // what is left must be exactly the adapter
  } catch (err) {
    throw new PackageError(`the package's adapter does not fit the base: ${(err as Error).message}`, 'bad_shape', { cause: err });
  }
  const priors = opts.priors ?? [];
  const limit = opts.maxOverlap ?? 0.05;
  let overlap: ReturnType<typeof maxOverlap>;
  try {
    overlap = maxOverlap(tensors, priors);
  } catch (err) {
    throw new PackageError(`cannot compare the adapter with earlier requests': ${(err as Error).message}`, 'bad_shape', { cause: err });
  }
  if (overlap.ratio > limit) {
    throw new PackageError(
      `${overlap.tensor} overlaps earlier request ${overlap.prior + 1}'s by ${overlap.ratio.toFixed(4)} (‖A_i A_tᵀ‖_F / ‖A_i‖_F‖A_t‖_F > ${limit}); ` +
        'retrain it with the earlier adapters as priors',
      'not_orthogonal',
    );
  }
  return { index: header.index, lora, adapter: tensors, detector, gate: { ...header.gate }, metrics: { ...header.metrics } };
}
