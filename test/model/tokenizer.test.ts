import { describe, expect, it } from 'vitest';
import { byteTokenizer, gpt2Tokenizer, TokenizerError, tokenizerFor } from '../../src/model/tokenizer.js';

describe('byte tokenizer', () => {
  it('byte tokenizer – encodes UTF-8 bytes and has eot = pad = 256 in a 257-id vocabulary', () => {
    const tok = byteTokenizer();

    const ids = tok.encode('hé!');

    expect(ids).toEqual([0x68, 0xc3, 0xa9, 0x21]);
    expect([tok.kind, tok.vocabSize, tok.eotId, tok.padId]).toEqual(['byte', 257, 256, 256]);
  });

  it('byte tokenizer – decode inverts encode, rendering eot as <|endoftext|>', () => {
    const tok = byteTokenizer();
    const text = 'naïve 🐳 text';

    const round = tok.decode([...tok.encode(text), tok.eotId, ...tok.encode('next')]);

    expect(round).toBe(`${text}<|endoftext|>next`);
  });

  it('byte tokenizer – maxTokens returns the exact prefix, also when the cut splits a surrogate pair', () => {
    const tok = byteTokenizer();
    const text = 'ab🐳cd'; // the whale is 2 UTF-16 units and 4 UTF-8 bytes

    for (let k = 0; k <= 9; k++) expect(tok.encode(text, k)).toEqual(tok.encode(text).slice(0, k));
  });

  it('byte tokenizer – rejects ids outside the vocabulary', () => {
    expect(() => byteTokenizer().decode([65, 257])).toThrow(TokenizerError);
  });
});

describe('gpt2 tokenizer', () => {
  it('gpt2 tokenizer – encodes known strings to the reference GPT-2 ids', () => {
    const tok = gpt2Tokenizer();

    expect(tok.encode('Hello world')).toEqual([15496, 995]);
    expect(tok.encode('Hello, world!')).toEqual([15496, 11, 995, 0]);
    expect(tok.encode(' the quick brown fox')).toEqual([262, 2068, 7586, 21831]);
    expect([tok.kind, tok.vocabSize, tok.eotId, tok.padId]).toEqual(['gpt2', 50257, 50256, 50256]);
  });

  it('gpt2 tokenizer – treats a literal <|endoftext|> in text as plain characters', () => {
    const tok = gpt2Tokenizer();

    const ids = tok.encode('<|endoftext|>');

    expect(ids).toEqual([27, 91, 437, 1659, 5239, 91, 29]);
    expect(tok.decode([tok.eotId])).toBe('<|endoftext|>');
  });

  it('gpt2 tokenizer – decode inverts encode on mixed text', () => {
    const tok = gpt2Tokenizer();
    const text = 'Subject: FREE $$$ — café\n\n  indented\tline 🐳';

    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('gpt2 tokenizer – maxTokens returns exactly the prefix of the full encoding', () => {
    const tok = gpt2Tokenizer();
    const text = 'Call now!!! Limited offer, act fast: www.example.com   \n\n  You have WON $1,000,000.';
    const full = tok.encode(text);

    for (let k = 0; k <= full.length + 2; k++) expect(tok.encode(text, k)).toEqual(full.slice(0, k));
  });

  it('gpt2 tokenizer – rejects ids outside the vocabulary', () => {
    expect(() => gpt2Tokenizer().decode([50257])).toThrow(/outside the vocabulary/);
  });
});

describe('tokenizerFor', () => {
  it('tokenizerFor – picks the tokenizer from the vocabulary size and rejects unknown sizes', () => {
    expect(tokenizerFor({ vocabSize: 257 }).kind).toBe('byte');
    expect(tokenizerFor({ vocabSize: 50257 }).kind).toBe('gpt2');
    expect(() => tokenizerFor({ vocabSize: 1000 })).toThrow(expect.objectContaining({ code: 'unknown_vocab' }));
  });
});
