/**
 * An O3 unlearning task on the client holding the data (ALGORITHMS.md §6; task.proto UnlearningTask). The
 * ForgetSelector is resolved on local data — an example matches when it matches every non-empty field: example id
 * (meta.id, else its row index), label name, meta.group, a regular expression on the text, or `query` as a
 * substring of the text. The rest of the local data is the "generic" slice the gate is calibrated against. Then
 * runUnlearningRequest with the run's current global adapter as the utility adapter, and the package is uploaded:
 * its tensors as the payload, its JSON header in UpdateHeader.unlearning_metadata. Raw data never leaves the client;
 * only the adapter, the detector statistics (and its feature bank, see unlearning/detector.ts) and metrics do.
 */
import type { LabeledDataset } from '../data/dataset.js';
import type { EncodedExamples } from '../data/encode.js';
import type { GPT2 } from '../model/gpt2.js';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { decodeSafetensors } from '../tensors/safetensors.js';
import {
  DEFAULT_UNLEARNING_REQUEST,
  TARGET_POLICIES,
  encodeUnlearningPackage,
  runUnlearningRequest,
  type TargetPolicy,
  type UnlearningRequestConfig,
} from '../unlearning/index.js';
import type { ForgetSelector, Task } from '../wire/messages.js';
import { TaskError } from './errors.js';
import { loraOfTask } from './train-task.js';

/** Rows of `dataset` the selector picks (forget) and the others (generic). TaskError 'data' when it picks none. */
export function resolveSelector(dataset: LabeledDataset, selector: ForgetSelector): { forget: number[]; generic: number[] } {
  const ids = new Set(selector.exampleIds);
  const label = selector.label === '' ? undefined : dataset.labels.indexOf(selector.label);
  let pattern: RegExp | undefined;
  try {
    pattern = selector.match === '' ? undefined : new RegExp(selector.match, 'u');
  } catch (err) {
    throw new TaskError(`forget.match is not a regular expression: ${(err as Error).message}`, 'data', { cause: err });
  }
  const forget: number[] = [];
  const generic: number[] = [];
  dataset.examples.forEach((ex, i) => {
    const hit =
      (ids.size === 0 || ids.has(ex.meta['id'] ?? String(i))) &&
      (label === undefined || ex.label === label) &&
      (selector.group === '' || ex.meta['group'] === selector.group) &&
      (pattern === undefined || pattern.test(ex.text)) &&
      (selector.query === '' || ex.text.includes(selector.query));
    (hit ? forget : generic).push(i);
  });
  if (forget.length === 0) throw new TaskError('the forget selector matches no local example (empty selection)', 'data');
  if (generic.length === 0 && forget.length < 2) throw new TaskError('the gate needs other local data to calibrate against, and there is none', 'data');
  return { forget, generic };
}

export interface UnlearnInputs {
  readonly model: GPT2;
  /** The run's current global adapter (the utility adapter served with the unlearning adapters). */
  readonly global: TensorMap;
  /** The earlier requests' unlearning adapters, in order (UnlearningTask.prior_adapters_sha256). */
  readonly priors: readonly TensorMap[];
  readonly dataset: LabeledDataset;
  readonly data: EncodedExamples;
  /** What the detector may carry; default `full`. */
  readonly disclosure?: DetectorDisclosure;
}

export interface UnlearnOutput {
  readonly tensors: Map<string, HostTensor>;
  /** The package's JSON header (UpdateHeader.unlearning_metadata). */
  readonly metadata: string;
  readonly metrics: Record<string, number>;
  readonly numExamples: number;
}

/**
 * What the data owner lets the uploaded detector carry (detector.ts, "What a package reveals"): `full` = per-example
 * rows besides the layers' means and precisions: the forget set's feature bank, and the hashed n-gram profiles of
 * the forget set and of the generic inputs (the client's other data) that the input block's nearest neighbours are
 * drawn from; `no-bank` = no per-example rows (the n-gram block as a mean and precision); `layers` = the layers' means
 * and precisions only (no bank, no n-gram profile). Each step down costs held-out AUROC (BENCHMARKS.md, Unlearning).
 */
export type DetectorDisclosure = 'full' | 'no-bank' | 'layers';
export const DETECTOR_DISCLOSURES: readonly DetectorDisclosure[] = Object.freeze(['full', 'no-bank', 'layers']);

/** The request configuration a task asks for (defaults for what it leaves unset), within what the client discloses. */
export function unlearningConfigOf(task: Task, disclosure: DetectorDisclosure = 'full'): UnlearningRequestConfig {
  const u = task.unlearning!;
  const policy = (u.targetPolicy || DEFAULT_UNLEARNING_REQUEST.adapter.targetPolicy) as TargetPolicy;
  if (!TARGET_POLICIES.includes(policy)) throw new TaskError(`target_policy ${u.targetPolicy} is not one this client knows (${TARGET_POLICIES.join(', ')})`, 'bad_task');
  const d = DEFAULT_UNLEARNING_REQUEST;
  const t = task.training;
  return {
    ...d,
    adapter: {
      ...d.adapter,
      lambda: u.orthogonalityLambda > 0 ? u.orthogonalityLambda : d.adapter.lambda,
      targetPolicy: policy,
      ...(t && t.steps > 0 ? { steps: t.steps, batchSize: t.batchSize || d.adapter.batchSize, lr: t.learningRate || d.adapter.lr } : {}),
    },
    detector: {
      ...d.detector,
      ...(u.detectorLayers.length > 0 ? { layers: [...u.detectorLayers] } : {}),
      ...(disclosure === 'full' ? {} : { bank: false, neighbours: 0 }), // the input block's neighbours are banks too
      ...(disclosure === 'layers' ? { input: null } : {}),
    },
  };
}

export async function computeUnlearning(task: Task, inputs: UnlearnInputs): Promise<UnlearnOutput> {
  const u = task.unlearning;
  if (!u?.forget) throw new TaskError(`unlearning task ${task.taskId} has no forget selector`, 'bad_task');
  if (inputs.priors.length !== u.index - 1) throw new TaskError(`request ${u.index} needs ${u.index - 1} earlier adapters, got ${inputs.priors.length}`, 'bad_task');
  const { forget, generic } = resolveSelector(inputs.dataset, u.forget);
  // Everything selected: calibrate against the forget set itself is meaningless, so use half of it as "generic".
  const genericRows = generic.length > 0 ? generic : forget.filter((_, i) => i % 2 === 1);
  const pkg = await runUnlearningRequest(
    inputs.model,
    { lora: loraOfTask(task), adapter: inputs.global },
    { ...inputs.data, subset: forget },
    { ...inputs.data, subset: genericRows },
    inputs.priors,
    unlearningConfigOf(task, inputs.disclosure),
  );
  const forgetFraction = forget.length / inputs.dataset.examples.length;
  const withFraction = { ...pkg, metrics: { ...pkg.metrics, forget_fraction: forgetFraction, forget_examples: forget.length } };
  const { tensors, metadata } = decodeSafetensors(encodeUnlearningPackage(withFraction, inputs.model.config));
  const finite: Record<string, number> = {};
  for (const [k, v] of Object.entries(withFraction.metrics)) if (Number.isFinite(v)) finite[k] = v;
  return { tensors, metadata: metadata['lethe.unlearning']!, metrics: finite, numExamples: forget.length };
}
