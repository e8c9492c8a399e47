/**
 * CreateRunRequest (typed RunSpec + extra_json, admin.proto) → the snake_case JSON object the run-config parser
 * reads (src/coordinator/run-config.ts parseRunConfig), so the coordinator validates one vocabulary.
 *
 * Proto3 presence decides what the operator set: absent optional scalars, empty repeated fields and absent
 * sub-messages are left out (the parser's defaults apply); a sub-message that is present but empty stays as `{}`
 * (e.g. `privacy {}` turns DP on with default settings).
 */
import { ProtocolError } from './errors.js';
import type { RunSpec } from './admin-messages.js';

type Json = Record<string, unknown>;

/** Keys the decoder adds to name the set member of a oneof; they are not config fields. */
const ONEOF_NAMES = new Set(['sampling']);

function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

function toConfigJson(message: Json): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(message)) {
    if (value === undefined || value === null || ONEOF_NAMES.has(key)) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    out[snake(key)] = isPlainObject(value) ? toConfigJson(value) : value;
  }
  return out;
}

function mergeExtra(into: Json, extra: Json, path: string): void {
  for (const [key, value] of Object.entries(extra)) {
    const at = path ? `${path}.${key}` : key;
    const existing = into[key];
    if (existing === undefined) into[key] = value;
    else if (isPlainObject(existing) && isPlainObject(value)) mergeExtra(existing, value, at);
    else throw new ProtocolError(`run config key ${at} is set both in the typed spec and in extra_json; set it once`, 'bad_run_spec');
  }
}

/** The raw run config for parseRunConfig. Throws ProtocolError('bad_run_spec') for bad or clashing extra_json. */
export function runSpecToConfigJson(spec: RunSpec | null, extraJson: string): Json {
  const out = spec ? toConfigJson(spec as unknown as Json) : {};
  if (extraJson.trim() === '') return out;
  let extra: unknown;
  try {
    extra = JSON.parse(extraJson);
  } catch (err) {
    throw new ProtocolError(`extra_json is not valid JSON: ${(err as Error).message}`, 'bad_run_spec', { cause: err });
  }
  if (!isPlainObject(extra)) throw new ProtocolError('extra_json must be a JSON object', 'bad_run_spec');
  mergeExtra(out, extra, '');
  return out;
}
