/** Tokenized tensors-to-be for the trainers: fixed-length classification rows and packed language-model streams. */
import type { Tokenizer } from '../model/tokenizer.js';
import type { Example } from './dataset.js';
import { DataArgumentError } from './errors.js';

/** Row-major [n, seqLen] token ids and mask, plus the [n] labels. */
export interface EncodedExamples {
  readonly n: number;
  readonly seqLen: number;
  /** [n * seqLen] token ids, right-padded with tokenizer.padId. */
  readonly ids: Int32Array;
  /** [n * seqLen] 1 for a real token, 0 for padding. Every row has at least one real token. */
  readonly mask: Float32Array;
  /** [n] label ids. */
  readonly labels: Int32Array;
}

function checkSeqLen(seqLen: number): void {
  if (!Number.isInteger(seqLen) || seqLen < 1) {
    throw new DataArgumentError(`seqLen must be a positive integer, got ${seqLen}`, 'bad_option');
  }
}

/**
 * Encodes examples to [n, seqLen] rows: the first seqLen tokens of each text (the head: a mail's subject and opening
 * lines), right-padded. An empty text becomes the single token eot with mask 1, so a classifier that reads the last
 * real token (HF GPT2ForSequenceClassification) always has one to read.
 */
export function encodeExamples(examples: readonly Example[], tokenizer: Tokenizer, seqLen: number): EncodedExamples {
  checkSeqLen(seqLen);
  const n = examples.length;
  const ids = new Int32Array(n * seqLen).fill(tokenizer.padId);
  const mask = new Float32Array(n * seqLen);
  const labels = new Int32Array(n);
  examples.forEach((ex, row) => {
    const tokens = tokenizer.encode(ex.text, seqLen);
    if (tokens.length === 0) tokens.push(tokenizer.eotId);
    ids.set(tokens, row * seqLen);
    mask.fill(1, row * seqLen, row * seqLen + tokens.length);
    labels[row] = ex.label;
  });
  return Object.freeze({ n, seqLen, ids, mask, labels });
}

/**
 * One token stream for pretraining: each document's tokens followed by eot (GPT-2's document separator), in order.
 * The caller slices windows of seqLen + 1 (inputs and shifted targets), so the stream must hold at least that many.
 */
export function packLanguageModeling(documents: readonly string[], tokenizer: Tokenizer, seqLen: number): Int32Array {
  checkSeqLen(seqLen);
  const parts = documents.map((d) => tokenizer.encode(d));
  const total = parts.reduce((a, p) => a + p.length + 1, 0);
  if (total < seqLen + 1) {
    throw new DataArgumentError(
      `the documents give ${total} tokens, fewer than one window of seqLen + 1 = ${seqLen + 1}; ` +
        'add text or lower seqLen',
      'too_few_examples',
    );
  }
  const out = new Int32Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
    out[at++] = tokenizer.eotId;
  }
  return out;
}
