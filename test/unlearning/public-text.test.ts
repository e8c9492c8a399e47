import { describe, expect, it } from 'vitest';
import { byteTokenizer, gpt2Tokenizer } from '../../src/model/tokenizer.js';
import { encodePublicSnippets, publicSnippets } from '../../src/unlearning/public-text.js';

describe('public-text snippets', () => {
  it('are deterministic, non-empty, and range from a few words to a paragraph', () => {
    const snippets = publicSnippets(60);
    expect(publicSnippets(60)).toEqual(snippets);
    expect(snippets).toHaveLength(60);
    expect(snippets.every((s) => s.trim().length > 0)).toBe(true);
    expect(snippets.filter((s) => s.split(' ').length <= 9).length).toBeGreaterThanOrEqual(20);
    expect(snippets.filter((s) => s.length >= 300).length).toBeGreaterThanOrEqual(10);
    expect(new Set(snippets).size).toBeGreaterThan(55);
  });

  it('encode to the requested sequence length with the given tokenizer (a GPT-2 base gets BPE ids, not bytes)', () => {
    const bytes = encodePublicSnippets(5, byteTokenizer(), 16);
    expect(bytes.n).toBe(5);
    expect(bytes.seqLen).toBe(16);
    const bpe = encodePublicSnippets(5, gpt2Tokenizer(), 16);
    expect(bpe.seqLen).toBe(16);
    expect(Array.from(bpe.ids)).not.toEqual(Array.from(bytes.ids));
  });
});
