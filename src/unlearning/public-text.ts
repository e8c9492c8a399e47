/**
 * Public text the detector's generic-input model is fitted on besides the client's own other data (ALGORITHMS.md §6:
 * D_t against "generic inputs"): snippets of the pretraining corpus (State of the Union addresses and Moby-Dick,
 * shipped inside npm packages, src/data/corpus.ts), from a few words to a paragraph.
 *
 * Why: a client's other data is often narrow (its other mails), and the relative score d_out − d_in only compares
 * an input with D_t and that data. Text far from both — a one-line chat message next to a mail corpus — then gets
 * an arbitrary score, and forgetting 60 spam mails gated 7 of 10 short unrelated sentences at high weight. With
 * ordinary prose of every length in the reference model (ν, Q), such text scores as generic.
 */
import { pretrainCorpus } from '../data/corpus.js';
import { encodeExamples, makeExample } from '../data/index.js';
import type { Tokenizer } from '../model/tokenizer.js';
import type { EncodedExamples } from '../train/types.js';

const LONG_CHARS = 600;

function sentences(document: string): string[] {
  return document
    .split(/(?<=[.!?])\s+/)
    .map((s) => s.replace(/\s+/g, ' ').trim())
    .filter((s) => s.length > 0);
}

/**
 * `count` snippets, deterministic, spread over the corpus's documents; in turn a fragment of 2–9 words, one or two
 * sentences, and a passage of consecutive sentences up to 600 characters.
 */
export function publicSnippets(count: number): string[] {
  const docs = pretrainCorpus().documents.map(sentences).filter((s) => s.length > 0);
  return Array.from({ length: count }, (_, i) => {
    const doc = docs[(i * 37) % docs.length]!;
    const at = (i * 7919) % doc.length;
    switch (i % 3) {
      case 0:
        return doc[at]!.split(' ').slice(0, 2 + (i % 8)).join(' ');
      case 1:
        return doc.slice(at, at + 1 + (i % 2)).join(' ');
      default: {
        let text = doc[at]!;
        for (let j = at + 1; j < doc.length && text.length + doc[j]!.length < LONG_CHARS; j++) text += ` ${doc[j]}`;
        return text;
      }
    }
  });
}

/** `publicSnippets(count)` encoded like the served inputs: the base model's tokenizer, `seqLen` tokens. */
export function encodePublicSnippets(count: number, tokenizer: Tokenizer, seqLen: number): EncodedExamples {
  return encodeExamples(
    publicSnippets(count).map((text) => makeExample(text, 0)),
    tokenizer,
    seqLen,
  );
}
