/**
 * Argument checks shared by store implementations: each returns the value (or its canonical encoding) or throws an
 * InvalidArgumentError naming the field, so bad input is refused before anything is read or written.
 */
import { InvalidArgumentError } from './errors.js';
import type { JsonObject } from './store.js';

/** Identifiers (client, run, request ids): 1–128 characters, no control characters. */
export function checkId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 128 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new InvalidArgumentError(`${field} must be 1-128 characters without control characters, got ${show(value)}`);
  }
  return value;
}

/** Free text (names, reasons): at most `max` characters. */
export function checkText(value: unknown, field: string, max = 1024): string {
  if (typeof value !== 'string' || value.length > max) {
    throw new InvalidArgumentError(`${field} must be a string of at most ${max} characters, got ${show(value)}`);
  }
  return value;
}

/** Millisecond timestamps and counters: a safe integer ≥ min. */
export function checkInt(value: unknown, field: string, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`${field} must be an integer ≥ ${min}, got ${show(value)}`);
  }
  return value;
}

/** A finite number in [min, max]. */
export function checkNumber(value: unknown, field: string, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${field} must be a finite number in [${min}, ${max}], got ${show(value)}`);
  }
  return value;
}

/** An adapter / payload hash: 64 lowercase hex characters. */
export function checkSha256Hex(value: unknown, field: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) {
    throw new InvalidArgumentError(`${field} must be a SHA-256 as 64 lowercase hex characters, got ${show(value)}`);
  }
  return value;
}

/** Raw bytes of an exact length (public keys, token hashes: 32) or a length range. */
export function checkBytes(
  value: unknown,
  field: string,
  size: number | { readonly min: number; readonly max: number },
): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidArgumentError(`${field} must be a Uint8Array, got ${show(value)}`);
  const { min, max } = typeof size === 'number' ? { min: size, max: size } : size;
  if (value.length < min || value.length > max) {
    const want = min === max ? `exactly ${min}` : `${min}-${max}`;
    throw new InvalidArgumentError(`${field} must be ${want} bytes, got ${value.length}`);
  }
  return value;
}

export function checkOneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`${field} must be one of ${allowed.join(', ')}, got ${show(value)}`);
  }
  return value as T;
}

/**
 * A plain JSON object, checked all the way down (finite numbers only, no undefined, functions, cycles or class
 * instances, so what is read back equals what was written); returns its JSON text.
 */
export function encodeJsonObject(value: unknown, field: string): string {
  if (!isPlainObject(value)) throw new InvalidArgumentError(`${field} must be a plain JSON object, got ${show(value)}`);
  checkJsonValue(value, field, new Set());
  return JSON.stringify(value);
}

export function decodeJsonObject(text: string): JsonObject {
  return JSON.parse(text) as JsonObject;
}

function checkJsonValue(value: unknown, path: string, ancestors: Set<object>): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidArgumentError(`${path} must be a finite number, got ${value}`);
    return;
  }
  if (typeof value !== 'object') throw new InvalidArgumentError(`${path} is not JSON (${typeof value})`);
  if (ancestors.has(value)) throw new InvalidArgumentError(`${path} contains a cycle`);
  ancestors.add(value);
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkJsonValue(item, `${path}[${i}]`, ancestors));
  } else if (isPlainObject(value)) {
    for (const [key, item] of Object.entries(value)) checkJsonValue(item, `${path}.${key}`, ancestors);
  } else {
    throw new InvalidArgumentError(`${path} is not JSON (a ${value.constructor?.name ?? 'non-plain'} object)`);
  }
  ancestors.delete(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return String(value);
}
