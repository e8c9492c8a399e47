/**
 * What Lethe announces on the event bus: a union tagged by `type`, each event on a subject derived from it, so a
 * subject and its payload can never disagree.
 *
 *   lethe.<run>.round.started        lethe.<run>.update.accepted     lethe.<run>.round.aggregated
 *   lethe.<run>.round.failed         lethe.<run>.run.state           lethe.<run>.task.failed
 *   lethe.unlearning.<id>.state
 *
 * Ids are used as subject tokens when they are plain ([A-Za-z0-9_-]+, not the reserved word 'unlearning');
 * any other id is written '~' + base64url of its UTF-8, so every id has exactly one token and no id can inject
 * '.', '*' or '>'. Events are announcements (at most once, no history): the store stays the source of truth.
 */
import type { RunState, UnlearningState } from '../store/store.js';
import { InvalidEventError } from './errors.js';

export type LetheEvent =
  | {
      readonly type: 'round.started';
      readonly runId: string;
      readonly round: number;
      readonly sampledClientIds: readonly string[];
      readonly deadlineAt: number;
    }
  | { readonly type: 'update.accepted'; readonly runId: string; readonly round: number; readonly clientId: string; readonly numExamples: number }
  | {
      readonly type: 'round.aggregated';
      readonly runId: string;
      readonly round: number;
      /** How many updates went into the aggregate. */
      readonly accepted: number;
      /** The new global adapter's blob hash (null: the round kept the old adapter). */
      readonly adapterSha: string | null;
      readonly metrics: Readonly<Record<string, number>>;
    }
  | { readonly type: 'round.failed'; readonly runId: string; readonly round: number; readonly reason: string }
  | { readonly type: 'run.state'; readonly runId: string; readonly state: RunState; readonly message: string | null }
  /** A sampled client reported it cannot finish its task (or was revoked): the round need not wait for it. */
  | { readonly type: 'task.failed'; readonly runId: string; readonly round: number; readonly clientId: string; readonly reason: string }
  | {
      readonly type: 'unlearning.state';
      readonly requestId: string;
      readonly runId: string;
      readonly state: UnlearningState;
      readonly failureReason: string | null;
    };

export type LetheEventType = LetheEvent['type'];

type FieldKind = 'string' | 'number' | 'string|null' | 'string[]' | 'metrics';

/** The fields each event must carry, checked on publish and on receipt. */
const SCHEMA: { readonly [t in LetheEventType]: Readonly<Record<string, FieldKind>> } = {
  'round.started': { runId: 'string', round: 'number', sampledClientIds: 'string[]', deadlineAt: 'number' },
  'update.accepted': { runId: 'string', round: 'number', clientId: 'string', numExamples: 'number' },
  'round.aggregated': { runId: 'string', round: 'number', accepted: 'number', adapterSha: 'string|null', metrics: 'metrics' },
  'round.failed': { runId: 'string', round: 'number', reason: 'string' },
  'run.state': { runId: 'string', state: 'string', message: 'string|null' },
  'task.failed': { runId: 'string', round: 'number', clientId: 'string', reason: 'string' },
  'unlearning.state': { requestId: 'string', runId: 'string', state: 'string', failureReason: 'string|null' },
};

const PLAIN_TOKEN = /^[A-Za-z0-9_-]+$/;
const RESERVED_TOKENS = new Set(['unlearning']);

/** The subject token of an id (see the module comment). */
export function idToken(id: string): string {
  if (id.length === 0) throw new InvalidEventError('an id in a subject must not be empty');
  return PLAIN_TOKEN.test(id) && !RESERVED_TOKENS.has(id) ? id : `~${Buffer.from(id, 'utf8').toString('base64url')}`;
}

/** The subject an event is published on. */
export function subjectOf(event: LetheEvent): string {
  if (event.type === 'unlearning.state') return `lethe.unlearning.${idToken(event.requestId)}.state`;
  return `lethe.${idToken(event.runId)}.${event.type}`;
}

/** Patterns to subscribe with (NATS wildcards: * one token, > the rest). */
export const SUBJECTS = Object.freeze({
  /** Everything Lethe publishes. */
  all: 'lethe.>',
  /** Every event of one run (rounds, updates, its state). */
  run: (runId: string): string => `lethe.${idToken(runId)}.>`,
  /** One event type of every run, e.g. SUBJECTS.ofType('round.aggregated'). */
  ofType: (type: Exclude<LetheEventType, 'unlearning.state'>): string => `lethe.*.${type}`,
  /** State changes of one unlearning request, or of all of them. */
  unlearning: (requestId?: string): string => `lethe.unlearning.${requestId === undefined ? '*' : idToken(requestId)}.state`,
});

/** Throws InvalidEventError unless `pattern` is a well-formed subject pattern. */
export function checkPattern(pattern: string): string {
  const tokens = pattern.split('.');
  tokens.forEach((t, i) => {
    const wildcardMisused = (t.includes('*') && t !== '*') || (t.includes('>') && (t !== '>' || i !== tokens.length - 1));
    if (t.length === 0 || /\s/.test(t) || wildcardMisused) {
      throw new InvalidEventError(`subject pattern ${JSON.stringify(pattern)} is malformed at token ${i + 1}; use tokens separated by '.', '*' for one token, a final '>' for the rest`);
    }
  });
  return pattern;
}

/** NATS subject matching: '*' matches exactly one token, a final '>' one or more. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

/** Throws InvalidEventError unless `value` is a well-formed LetheEvent; returns it typed. */
export function checkEvent(value: unknown): LetheEvent {
  if (typeof value !== 'object' || value === null) throw new InvalidEventError(`an event must be an object, got ${String(value)}`);
  const type = (value as { type?: unknown }).type;
  const schema = typeof type === 'string' && Object.hasOwn(SCHEMA, type) ? SCHEMA[type as LetheEventType] : undefined;
  if (schema === undefined) throw new InvalidEventError(`unknown event type ${JSON.stringify(type)}; one of ${Object.keys(SCHEMA).join(', ')}`);
  for (const [field, kind] of Object.entries(schema)) {
    const v = (value as Record<string, unknown>)[field];
    if (!hasKind(v, kind)) throw new InvalidEventError(`${String(type)} event: ${field} must be ${kind}, got ${JSON.stringify(v)}`);
  }
  return value as LetheEvent;
}

function hasKind(v: unknown, kind: FieldKind): boolean {
  switch (kind) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'string|null':
      return v === null || typeof v === 'string';
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'metrics':
      return typeof v === 'object' && v !== null && Object.values(v).every((x) => typeof x === 'number' && Number.isFinite(x));
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeEvent(event: LetheEvent): Uint8Array {
  return encoder.encode(JSON.stringify(checkEvent(event)));
}

/** Decodes a received payload; InvalidEventError for anything that is not a well-formed event. */
export function decodeEvent(bytes: Uint8Array): LetheEvent {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (err) {
    throw Object.assign(new InvalidEventError(`payload is not JSON (${bytes.length} bytes)`), { cause: err });
  }
  return checkEvent(value);
}
