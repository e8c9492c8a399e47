/**
 * LoRA adapters for GPT-2 (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", §4.1).
 *
 * An adapted projection y = x W + b (HF Conv1D, W: [d_in, d_out]) becomes
 *   y = x W + b + (alpha/r) · x Aᵀ Bᵀ,   A: [r, d_in], B: [d_out, r]
 * i.e. ΔW = (alpha/r)·B·A in PyTorch orientation [d_out, d_in], which is added to W transposed. Tensor names are fixed
 * project-wide: `h.{i}.{module}.lora_A.weight`, `h.{i}.{module}.lora_B.weight`, and the classification head
 * `score.weight` [numLabels, nEmbd] (no bias, like HF GPT2ForSequenceClassification).
 *
 * On disk adapters use PEFT's layout (adapter_model.safetensors + adapter_config.json) so that
 * `PeftModel.from_pretrained` can load them onto the HF base model; see savePeftAdapter.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { cloneTensors, sizeOf } from '../tensors/host.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../tensors/safetensors.js';
import { AdapterError, CheckpointError, ModelConfigError } from './errors.js';
import type { GPT2Config } from './gpt2.js';
import { seededNormal, seededUniform } from './random.js';

export const LORA_TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraConfig {
  readonly r: number; // rank; 8 is the LoRA paper's and MeZO's default
  readonly alpha: number; // scale numerator: the update is (alpha/r)·B·A, so changing r keeps the step size
  readonly targets: readonly LoraTarget[]; // adapted projections, in every layer
  readonly numLabels: number; // classification head size; 0 = language modelling, no head
  readonly seed: string; // seeds A and the head, so every federated node starts from the identical adapter
}

/** r 8, alpha 16 on q,k,v (fused c_attn) and the attention output: the MeZO/LoRA reference setting for GPT-2. */
export const DEFAULT_LORA: LoraConfig = Object.freeze({
  r: 8,
  alpha: 16,
  targets: Object.freeze(['attn.c_attn', 'attn.c_proj'] as const),
  numLabels: 2,
  seed: 'lethe',
});

/**
 * Adapter tensors handed to the model's forward functions. `tensors` may be tf.Variables (backprop), perturbed copies
 * (MeZO, ESSA) or constants. `gate`, when set, is a [B] tensor scaling this adapter's contribution per example — O3's
 * h = W x + Σ_t w_t(x)·(alpha/r)·B_t A_t x (ALGORITHMS.md §6).
 */
export interface LoraParams {
  readonly config: LoraConfig;
  readonly tensors: ReadonlyMap<string, tf.Tensor>;
  readonly gate?: tf.Tensor1D;
}

/** One adapted projection: where it sits, the names of its two factors and the projection's width. */
export interface LoraSlot {
  layer: number;
  module: LoraTarget;
  a: string; // h.{layer}.{module}.lora_A.weight, [r, dIn]
  b: string; // h.{layer}.{module}.lora_B.weight, [dOut, r]
  dIn: number;
  dOut: number;
}

export const HEAD_NAME = 'score.weight';

export function validateLoraConfig(lora: LoraConfig): void {
  if (!Number.isInteger(lora.r) || lora.r < 1) throw new ModelConfigError(`LoRA rank r must be a positive integer, got ${lora.r}`);
  if (!Number.isFinite(lora.alpha) || lora.alpha <= 0) throw new ModelConfigError(`LoRA alpha must be positive, got ${lora.alpha}`);
  if (!Number.isInteger(lora.numLabels) || lora.numLabels < 0) {
    throw new ModelConfigError(`numLabels must be a non-negative integer (0 = no head), got ${lora.numLabels}`);
  }
  for (const t of lora.targets) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) {
      throw new ModelConfigError(`unknown LoRA target "${t}"; expected some of ${LORA_TARGETS.join(', ')}`);
    }
  }
  if (new Set(lora.targets).size !== lora.targets.length) throw new ModelConfigError('LoRA targets must not repeat');
}

/** The (alpha/r) factor multiplying B·A. */
export function loraScale(lora: LoraConfig): number {
  return lora.alpha / lora.r;
}

function projectionShape(model: GPT2Config, module: LoraTarget): { dIn: number; dOut: number } {
  const c = model.nEmbd;
  switch (module) {
    case 'attn.c_attn':
      return { dIn: c, dOut: 3 * c }; // fused q, k, v
    case 'attn.c_proj':
      return { dIn: c, dOut: c };
    case 'mlp.c_fc':
      return { dIn: c, dOut: 4 * c };
    case 'mlp.c_proj':
      return { dIn: 4 * c, dOut: c };
  }
}

/** Every adapted projection, layer by layer, in `lora.targets` order within a layer. */
export function loraSlots(model: GPT2Config, lora: LoraConfig): LoraSlot[] {
  validateLoraConfig(lora);
  const slots: LoraSlot[] = [];
  for (let layer = 0; layer < model.nLayer; layer++) {
    for (const module of lora.targets) {
      const p = `h.${layer}.${module}`;
      slots.push({ layer, module, a: `${p}.lora_A.weight`, b: `${p}.lora_B.weight`, ...projectionShape(model, module) });
    }
  }
  return slots;
}

/**
 * A fresh adapter: for each slot A then B, then the head. A ~ U(−1/√d_in, 1/√d_in) — PEFT's default, which is
 * kaiming_uniform_(a=√5) — from its own seeded stream, so every node that shares `lora.seed` holds the identical A
 * (FFA-LoRA freezes it; ALGORITHMS.md §1). B = 0, so the adapted model starts equal to the base. The head
 * score.weight ~ N(0, 0.02²), HF's initializer_range.
 */
export function initAdapter(model: GPT2Config, lora: LoraConfig): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const s of loraSlots(model, lora)) {
    out.set(s.a, { shape: [lora.r, s.dIn], data: seededUniform(lora.r * s.dIn, 1 / Math.sqrt(s.dIn), lora.seed, s.a) });
    out.set(s.b, { shape: [s.dOut, lora.r], data: new Float32Array(s.dOut * lora.r) });
  }
  if (lora.numLabels > 0) {
    const n = lora.numLabels * model.nEmbd;
    out.set(HEAD_NAME, { shape: [lora.numLabels, model.nEmbd], data: seededNormal(n, 0.02, lora.seed, HEAD_NAME) });
  }
  return out;
}

/** Checks that `adapter` holds exactly the tensors `lora` implies for `model`, with the right shapes. */
export function validateAdapter(adapter: TensorMap, model: GPT2Config, lora: LoraConfig): void {
  const expected = new Map<string, number[]>();
  for (const s of loraSlots(model, lora)) {
    expected.set(s.a, [lora.r, s.dIn]);
    expected.set(s.b, [s.dOut, lora.r]);
  }
  if (lora.numLabels > 0) expected.set(HEAD_NAME, [lora.numLabels, model.nEmbd]);
  const missing = [...expected.keys()].filter((n) => !adapter.has(n));
  if (missing.length > 0) {
    throw new AdapterError(`adapter lacks ${missing.length} tensor(s) its config implies: ${missing.slice(0, 8).join(', ')}`, 'missing_adapter_tensor');
  }
  for (const [name, t] of adapter) {
    const want = expected.get(name);
    if (!want) throw new AdapterError(`adapter holds "${name}", which its config (targets ${lora.targets.join(', ')}) does not use`, 'adapter_shape');
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]) || t.data.length !== sizeOf(want)) {
      throw new AdapterError(`adapter tensor "${name}" has shape [${t.shape.join(', ')}], expected [${want.join(', ')}]`, 'adapter_shape');
    }
  }
}

/** Uploads host tensors; the caller owns (and disposes) the result. */
export function toTf(host: TensorMap): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of host) out.set(name, tf.tensor(t.data, [...t.shape], 'float32'));
  return out;
}

/** Downloads tensors (synchronously) into fresh host copies. */
export function toHost(tensors: ReadonlyMap<string, tf.Tensor>): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of tensors) out.set(name, { shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) });
  return out;
}

/** base weights with sign·(alpha/r)·(B·A)ᵀ added to each adapted Conv1D weight [d_in, d_out]; accumulates in float64. */
function applyDelta(base: TensorMap, adapter: TensorMap, model: GPT2Config, lora: LoraConfig, sign: 1 | -1): Map<string, HostTensor> {
  validateAdapter(adapter, model, lora);
  const out = cloneTensors(base);
  const scale = sign * loraScale(lora);
  const r = lora.r;
  for (const s of loraSlots(model, lora)) {
    const name = `h.${s.layer}.${s.module}.weight`;
    const w = out.get(name);
    if (!w || w.data.length !== s.dIn * s.dOut) {
      throw new AdapterError(`base weights lack "${name}" of shape [${s.dIn}, ${s.dOut}] to merge the adapter into`, 'adapter_shape');
    }
    const a = adapter.get(s.a)!.data; // [r, dIn]
    const b = adapter.get(s.b)!.data; // [dOut, r]
    const delta = new Float64Array(s.dIn * s.dOut); // [dIn, dOut]: delta[i][j] = Σ_k A[k][i]·B[j][k]
    for (let i = 0; i < s.dIn; i++) {
      const row = i * s.dOut;
      for (let k = 0; k < r; k++) {
        const aki = a[k * s.dIn + i]!;
        if (aki === 0) continue;
        for (let j = 0; j < s.dOut; j++) delta[row + j]! += aki * b[j * r + k]!;
      }
    }
    for (let i = 0; i < delta.length; i++) w.data[i] = w.data[i]! + scale * delta[i]!;
  }
  return out;
}

/** W' = W + (alpha/r)·(B·A)ᵀ for every adapted projection (HF Conv1D orientation). The head is not part of the base. */
export function mergeAdapter(base: TensorMap, adapter: TensorMap, model: GPT2Config, lora: LoraConfig): Map<string, HostTensor> {
  return applyDelta(base, adapter, model, lora, 1);
}

/** The inverse of mergeAdapter (up to float32 rounding). */
export function unmergeAdapter(merged: TensorMap, adapter: TensorMap, model: GPT2Config, lora: LoraConfig): Map<string, HostTensor> {
  return applyDelta(merged, adapter, model, lora, -1);
}

// ---------------------------------------------------------------------------------------------------------------
// PEFT files

const PEFT_PREFIX = 'base_model.model.';
const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
const ADAPTER_CONFIG = 'adapter_config.json';
const SEED_METADATA = 'lethe.seed'; // PEFT has no field for it; kept in the safetensors metadata instead

/**
 * PEFT key of a Lethe adapter tensor. LoRA factors live under the base model's module path
 * (`base_model.model.transformer.h.0.attn.c_attn.lora_A.weight`); the head is saved as PEFT saves a
 * modules_to_save copy of GPT2ForSequenceClassification's `score`: `base_model.model.score.weight`.
 */
function peftKey(name: string): string {
  return name === HEAD_NAME ? `${PEFT_PREFIX}${name}` : `${PEFT_PREFIX}transformer.${name}`;
}

/** Lethe name of a PEFT key, tolerating the in-memory forms (adapter name ".default", "modules_to_save."). */
function letheName(key: string): string {
  let n = key.startsWith(PEFT_PREFIX) ? key.slice(PEFT_PREFIX.length) : key;
  if (n.startsWith('transformer.')) n = n.slice('transformer.'.length);
  return n.replace('.modules_to_save', '').replace(/\.default\.weight$/, '.weight');
}

/**
 * Writes `dir/adapter_model.safetensors` and `dir/adapter_config.json` in PEFT's layout. target_modules use the
 * qualified names ("attn.c_proj", not "c_proj", which PEFT would also match in the MLP); fan_in_fan_out is true
 * because GPT-2's projections are Conv1D; the head is listed in modules_to_save.
 */
export async function savePeftAdapter(dir: string, adapter: TensorMap, lora: LoraConfig, baseModel: string): Promise<void> {
  validateLoraConfig(lora);
  const config = {
    peft_type: 'LORA',
    task_type: lora.numLabels > 0 ? 'SEQ_CLS' : 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: lora.r,
    lora_alpha: lora.alpha,
    lora_dropout: 0,
    target_modules: [...lora.targets],
    fan_in_fan_out: true,
    bias: 'none',
    use_rslora: false,
    modules_to_save: lora.numLabels > 0 ? ['score'] : null,
    init_lora_weights: true,
    inference_mode: true,
  };
  const tensors = new Map<string, HostTensor>();
  for (const [name, t] of adapter) tensors.set(peftKey(name), t);
  try {
    await mkdir(dir, { recursive: true });
    await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt', [SEED_METADATA]: lora.seed });
    await writeFile(join(dir, ADAPTER_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
  } catch (err) {
    throw new CheckpointError(`cannot write PEFT adapter to ${dir}: ${(err as Error).message}`, 'io', dir, { cause: err });
  }
}

/**
 * Reads a PEFT LoRA adapter written by savePeftAdapter or by PEFT itself for GPT-2. The targets and the head size
 * come from the tensors present; the seed from Lethe's metadata (DEFAULT_LORA.seed for foreign adapters).
 */
export async function loadPeftAdapter(dir: string): Promise<{ adapter: Map<string, HostTensor>; lora: LoraConfig; baseModel: string }> {
  const configPath = join(dir, ADAPTER_CONFIG);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing_file' : 'bad_config_json';
    throw new CheckpointError(`cannot read ${configPath}: ${(err as Error).message}`, code, configPath, { cause: err });
  }
  if (raw.peft_type !== 'LORA') throw new AdapterError(`${configPath}: peft_type is ${String(raw.peft_type)}, only LORA is supported`, 'bad_adapter_config');
  if (raw.use_rslora === true) throw new AdapterError(`${configPath}: rsLoRA scaling (alpha/√r) is not supported`, 'bad_adapter_config');
  const r = raw.r;
  const alpha = raw.lora_alpha;
  if (typeof r !== 'number' || typeof alpha !== 'number') {
    throw new AdapterError(`${configPath}: r and lora_alpha must be numbers`, 'bad_adapter_config');
  }
  const weightsPath = join(dir, ADAPTER_WEIGHTS);
  const { tensors, metadata } = await readSafetensorsFile(weightsPath).catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing_file' : 'io';
    throw new CheckpointError(`cannot read ${weightsPath}: ${(err as Error).message}`, code, weightsPath, { cause: err });
  });
  const adapter = new Map<string, HostTensor>();
  for (const [key, t] of tensors) adapter.set(letheName(key), t);
  const targets = LORA_TARGETS.filter((m) => adapter.has(`h.0.${m}.lora_A.weight`));
  if (targets.length === 0) throw new AdapterError(`${dir}: no GPT-2 LoRA tensors (h.0.<module>.lora_A.weight) found`, 'missing_adapter_tensor');
  const head = adapter.get(HEAD_NAME);
  const lora: LoraConfig = Object.freeze({
    r,
    alpha,
    targets: Object.freeze(targets),
    numLabels: head ? head.shape[0]! : 0,
    seed: metadata[SEED_METADATA] ?? DEFAULT_LORA.seed,
  });
  validateLoraConfig(lora);
  return { adapter, lora, baseModel: typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : '' };
}
