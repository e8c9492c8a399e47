import { describe, expect, it } from 'vitest';
import { encodeExamples, makeExample, packLanguageModeling } from '../../src/data/index.js';
import { byteTokenizer, gpt2Tokenizer } from '../../src/model/tokenizer.js';

describe('encodeExamples', () => {
  it('encodeExamples – right-pads short texts with padId and masks the padding', () => {
    const tok = byteTokenizer();
    const examples = [makeExample('hi', 1), makeExample('abcdef', 0)];

    const enc = encodeExamples(examples, tok, 4);

    expect([enc.n, enc.seqLen]).toEqual([2, 4]);
    expect([...enc.ids]).toEqual([104, 105, 256, 256, 97, 98, 99, 100]);
    expect([...enc.mask]).toEqual([1, 1, 0, 0, 1, 1, 1, 1]);
    expect([...enc.labels]).toEqual([1, 0]);
  });

  it('encodeExamples – truncation keeps the head, identical to the full encoding prefix (GPT-2 BPE)', () => {
    const tok = gpt2Tokenizer();
    const text = 'Subject: You WON!!! Claim your prize now at www.example.com before midnight.';

    const enc = encodeExamples([makeExample(text, 1)], tok, 5);

    expect([...enc.ids]).toEqual(tok.encode(text).slice(0, 5));
    expect([...enc.mask]).toEqual([1, 1, 1, 1, 1]);
  });

  it('encodeExamples – an empty text becomes one real eot token so every row has a token to read', () => {
    const tok = byteTokenizer();

    const enc = encodeExamples([makeExample('', 0)], tok, 3);

    expect([...enc.ids]).toEqual([256, 256, 256]);
    expect([...enc.mask]).toEqual([1, 0, 0]);
  });

  it('encodeExamples – rejects a non-positive seqLen', () => {
    expect(() => encodeExamples([], byteTokenizer(), 0)).toThrow(expect.objectContaining({ code: 'bad_option' }));
  });
});

describe('packLanguageModeling', () => {
  it('packLanguageModeling – concatenates documents, each followed by eot', () => {
    const tok = byteTokenizer();

    const stream = packLanguageModeling(['ab', 'c'], tok, 2);

    expect([...stream]).toEqual([97, 98, 256, 99, 256]);
  });

  it('packLanguageModeling – refuses a stream shorter than one window of seqLen + 1', () => {
    expect(() => packLanguageModeling(['ab'], byteTokenizer(), 3)).toThrow(
      expect.objectContaining({ code: 'too_few_examples' }),
    );
  });
});
