/**
 * GPT-2 checkpoints in Hugging Face's layout: `config.json` + `model.safetensors` (or a sharded
 * `model.safetensors.index.json` with its shards), so Lethe reads checkpoints exported by transformers and writes
 * ones transformers' GPT2LMHeadModel.from_pretrained can load.
 *
 * Names are normalised to Lethe's (no "transformer." prefix). Ignored on load: `lm_head.weight` (GPT-2 ties it to
 * wte) and the `attn.bias` / `attn.masked_bias` buffers (the causal mask is rebuilt, not stored).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostTensor, TensorMap } from '../tensors/host.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../tensors/safetensors.js';
import { CheckpointError, WeightsError } from './errors.js';
import type { GPT2Config } from './gpt2.js';
import { validateConfig, validateWeights, weightShapes } from './gpt2.js';

const CONFIG_FILE = 'config.json';
const WEIGHTS_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';
const PREFIX = 'transformer.';

/** Activation names transformers maps to the tanh-approximated GELU that Lethe's GPT-2 computes. */
const TANH_GELUS = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'];

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CheckpointError(`cannot read ${path}: ${(err as Error).message}`, errnoCode(err) === 'ENOENT' ? 'missing_file' : 'io', path, { cause: err });
  }
  try {
    const json = JSON.parse(text) as unknown;
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TypeError('not a JSON object');
    return json as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(`${path} is not a JSON object: ${(err as Error).message}`, 'bad_config_json', path, { cause: err });
  }
}

/** A GPT2Config from HF config.json fields; refuses variants Lethe's forward would compute differently. */
export function parseHfConfig(json: Record<string, unknown>, path = CONFIG_FILE): GPT2Config {
  const int = (key: string, fallback?: unknown): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new CheckpointError(`${path}: "${key}" must be an integer, got ${JSON.stringify(v)}`, 'bad_config_json', path);
    }
    return v;
  };
  const refuse = (why: string): never => {
    throw new CheckpointError(`${path}: ${why}; Lethe implements plain GPT-2 only`, 'bad_config_json', path);
  };
  if (json.model_type !== undefined && json.model_type !== 'gpt2') refuse(`model_type is "${String(json.model_type)}"`);
  const activation = json.activation_function ?? 'gelu_new';
  if (!TANH_GELUS.includes(activation as string)) refuse(`activation_function "${String(activation)}" is not the tanh GELU`);
  if (json.scale_attn_by_inverse_layer_idx === true) refuse('scale_attn_by_inverse_layer_idx is set');
  if (json.scale_attn_weights === false) refuse('scale_attn_weights is false');
  if (json.tie_word_embeddings === false) refuse('tie_word_embeddings is false (Lethe ties the LM head to wte)');
  const nEmbd = int('n_embd');
  if (json.n_inner !== undefined && json.n_inner !== null && json.n_inner !== 4 * nEmbd) refuse(`n_inner is ${String(json.n_inner)}, not 4·n_embd`);
  const eps = json.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number') refuse('layer_norm_epsilon is not a number');
  const config: GPT2Config = Object.freeze({
    vocabSize: int('vocab_size'),
    nPositions: int('n_positions', json.n_ctx),
    nEmbd,
    nLayer: int('n_layer'),
    nHead: int('n_head'),
    layerNormEpsilon: eps as number,
  });
  try {
    validateConfig(config);
  } catch (err) {
    throw new CheckpointError(`${path}: ${(err as Error).message}`, 'bad_config_json', path, { cause: err });
  }
  return config;
}

/** HF config.json for a Lethe GPT-2 (dropout 0: Lethe trains without it, so HF fine-tuning behaves alike). */
export function hfConfigJson(config: GPT2Config): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    activation_function: 'gelu_new',
    vocab_size: config.vocabSize,
    n_positions: config.nPositions,
    n_ctx: config.nPositions,
    n_embd: config.nEmbd,
    n_layer: config.nLayer,
    n_head: config.nHead,
    n_inner: null,
    layer_norm_epsilon: config.layerNormEpsilon,
    initializer_range: 0.02,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    bos_token_id: config.vocabSize - 1, // <|endoftext|> is the last id in both the byte and the GPT-2 BPE vocabularies
    eos_token_id: config.vocabSize - 1,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
  };
}

/** Lethe's name for a checkpoint key, or undefined for keys that are deliberately not loaded. */
function normaliseKey(key: string): string | undefined {
  const name = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key;
  if (name === 'lm_head.weight' || name.endsWith('.attn.bias') || name.endsWith('.attn.masked_bias')) return undefined;
  return name;
}

/** The safetensors files making up the checkpoint: the single file, or every shard named by the index. */
async function weightFiles(dir: string): Promise<string[]> {
  const indexPath = join(dir, INDEX_FILE);
  let index: Record<string, unknown>;
  try {
    index = await readJson(indexPath);
  } catch (err) {
    if (err instanceof CheckpointError && err.code === 'missing_file') return [join(dir, WEIGHTS_FILE)];
    throw err;
  }
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null) {
    throw new CheckpointError(`${indexPath}: "weight_map" must map tensor names to shard files`, 'bad_config_json', indexPath);
  }
  return [...new Set(Object.values(map as Record<string, string>))].map((f) => join(dir, f));
}

/**
 * Reads a GPT-2 checkpoint directory. Tensors may be F32, F16 or BF16 (all become float32). Throws CheckpointError
 * for unreadable files, WeightsError naming every missing, unexpected or mis-shaped tensor.
 */
export async function loadCheckpoint(dir: string): Promise<{ config: GPT2Config; weights: Map<string, HostTensor> }> {
  const configPath = join(dir, CONFIG_FILE);
  const config = parseHfConfig(await readJson(configPath), configPath);
  const found = new Map<string, HostTensor>();
  for (const file of await weightFiles(dir)) {
    const { tensors } = await readSafetensorsFile(file, (key) => normaliseKey(key) !== undefined).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') throw new CheckpointError(`checkpoint ${dir} has no ${file}`, 'missing_file', file, { cause: err });
      throw err; // a SafetensorsError already says what is wrong with the file
    });
    for (const [key, t] of tensors) {
      const name = normaliseKey(key)!;
      if (found.has(name)) throw new WeightsError(`tensor "${name}" appears twice (with and without "${PREFIX}"?) in ${dir}`, 'unexpected_weight', [name]);
      found.set(name, t);
    }
  }
  validateWeights(config, found);
  // HF order, whatever order the file used.
  const weights = new Map<string, HostTensor>();
  for (const name of weightShapes(config).keys()) weights.set(name, found.get(name)!);
  return { config, weights };
}

/**
 * Writes `dir/model.safetensors` (F32, HF names without prefix, HF order) and `dir/config.json`. Returns the SHA-256
 * of model.safetensors, which identifies the base model in adapter metadata and run records.
 */
export async function saveCheckpoint(
  dir: string,
  config: GPT2Config,
  weights: TensorMap,
  extraMetadata: Record<string, string> = {},
): Promise<{ sha256: string }> {
  validateWeights(config, weights);
  const ordered = new Map<string, HostTensor>();
  for (const name of weightShapes(config).keys()) ordered.set(name, weights.get(name)!);
  try {
    await mkdir(dir, { recursive: true });
    const { sha256 } = await writeSafetensorsFile(join(dir, WEIGHTS_FILE), ordered, { format: 'pt', ...extraMetadata });
    await writeFile(join(dir, CONFIG_FILE), `${JSON.stringify(hfConfigJson(config), null, 2)}\n`);
    return { sha256 };
  } catch (err) {
    throw new CheckpointError(`cannot write checkpoint to ${dir}: ${(err as Error).message}`, 'io', dir, { cause: err });
  }
}
