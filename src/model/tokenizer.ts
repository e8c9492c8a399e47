/**
 * Tokenizers for Lethe's GPT-2-architecture models.
 *
 * - `byteTokenizer()`: UTF-8 bytes (ids 0..255) plus `<|endoftext|>` = 256, vocabSize 257. Used by the built-in tiny
 *   models, which need no merges file and cover every string.
 * - `gpt2Tokenizer()`: the GPT-2 byte-level BPE (r50k_base, 50257 ids, `<|endoftext|>` = 50256) shipped inside the
 *   `gpt-tokenizer` package, so nothing is downloaded at run time. Ids equal Hugging Face's `gpt2` tokenizer.
 *
 * In both, `encode` treats a literal "<|endoftext|>" in the text as ordinary characters: only the data pipeline
 * (packLanguageModeling) inserts the end-of-text id, so user text can never forge a document boundary.
 * GPT-2 has no pad token; like HF GPT2ForSequenceClassification we pad with eot and rely on the attention mask.
 */
import { encodeGenerator as bpeEncodeGenerator, decode as bpeDecode } from 'gpt-tokenizer/encoding/r50k_base';

export interface Tokenizer {
  readonly kind: 'byte' | 'gpt2';
  readonly vocabSize: number;
  /** Id of `<|endoftext|>`: the document separator in language-model packing. */
  readonly eotId: number;
  /** Id used to right-pad fixed-length rows (always masked out). */
  readonly padId: number;
  /**
   * Token ids of `text`. With `maxTokens`, returns exactly `encode(text).slice(0, maxTokens)` but stops early, so
   * truncating long documents (e.g. spam mails with attachments) costs O(maxTokens), not O(text).
   */
  encode(text: string, maxTokens?: number): number[];
  /** Text of `ids`; eot renders as "<|endoftext|>". Throws TokenizerError on an id outside the vocabulary. */
  decode(ids: readonly number[]): string;
}

/** Named error for tokenizer misuse (unknown vocabulary, out-of-range ids). */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
  constructor(
    message: string,
    readonly code: 'unknown_vocab' | 'bad_token_id' | 'bad_argument',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const EOT_TEXT = '<|endoftext|>';
const BYTE_VOCAB = 257; // 256 byte values + eot
const GPT2_VOCAB = 50257; // 50000 merges + 256 bytes + eot
const GPT2_EOT = 50256;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false }); // invalid byte runs decode to U+FFFD, never throw

function checkMaxTokens(maxTokens: number | undefined): void {
  if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens >= 0)) {
    throw new TokenizerError(`maxTokens must be a non-negative integer, got ${maxTokens}`, 'bad_argument');
  }
}

function checkIds(ids: readonly number[], vocabSize: number, kind: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new TokenizerError(
        `${kind} tokenizer: id ${id} at position ${i} is outside the vocabulary [0, ${vocabSize}); ` +
          'check that the model and tokenizer vocabulary sizes match',
        'bad_token_id',
      );
    }
  }
}

/** UTF-8 byte tokenizer: id = byte value, 256 = eot (also pad). */
export function byteTokenizer(): Tokenizer {
  const eotId = 256;
  return Object.freeze({
    kind: 'byte' as const,
    vocabSize: BYTE_VOCAB,
    eotId,
    padId: eotId,
    encode(text: string, maxTokens?: number): number[] {
      checkMaxTokens(maxTokens);
      if (maxTokens === undefined) return Array.from(utf8Encoder.encode(text));
      // Every UTF-16 unit yields >= 1 byte, so maxTokens + 1 units cover maxTokens bytes; the extra unit keeps a
      // surrogate pair cut at position maxTokens - 1 whole (a lone surrogate would encode differently).
      return Array.from(utf8Encoder.encode(text.slice(0, maxTokens + 1)).subarray(0, maxTokens));
    },
    decode(ids: readonly number[]): string {
      checkIds(ids, BYTE_VOCAB, 'byte');
      let out = '';
      let run: number[] = [];
      for (const id of ids) {
        if (id === eotId) {
          out += utf8Decoder.decode(Uint8Array.from(run)) + EOT_TEXT;
          run = [];
        } else {
          run.push(id);
        }
      }
      return out + utf8Decoder.decode(Uint8Array.from(run));
    },
  });
}

// Special tokens are encoded as plain text (see header); the package's default would throw on them instead.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/** GPT-2 byte-level BPE (r50k_base): vocabSize 50257, eot = pad = 50256. */
export function gpt2Tokenizer(): Tokenizer {
  return Object.freeze({
    kind: 'gpt2' as const,
    vocabSize: GPT2_VOCAB,
    eotId: GPT2_EOT,
    padId: GPT2_EOT,
    encode(text: string, maxTokens?: number): number[] {
      checkMaxTokens(maxTokens);
      const limit = maxTokens ?? Number.POSITIVE_INFINITY;
      const out: number[] = [];
      if (limit === 0) return out;
      // The generator yields the BPE of one pre-token chunk at a time, and chunks never interact, so stopping
      // early gives an exact prefix of the full encoding.
      for (const chunk of bpeEncodeGenerator(text, PLAIN_TEXT)) {
        for (const id of chunk) {
          out.push(id);
          if (out.length >= limit) return out;
        }
      }
      return out;
    },
    decode(ids: readonly number[]): string {
      checkIds(ids, GPT2_VOCAB, 'gpt2');
      return bpeDecode(ids);
    },
  });
}

/** The tokenizer matching a model config's vocabulary: 257 -> byte, 50257 -> GPT-2 BPE. */
export function tokenizerFor(config: { readonly vocabSize: number }): Tokenizer {
  switch (config.vocabSize) {
    case BYTE_VOCAB:
      return byteTokenizer();
    case GPT2_VOCAB:
      return gpt2Tokenizer();
    default:
      throw new TokenizerError(
        `no tokenizer for vocabSize ${config.vocabSize}: use ${BYTE_VOCAB} (byte-level tiny models) or ` +
          `${GPT2_VOCAB} (GPT-2 BPE)`,
        'unknown_vocab',
      );
  }
}
