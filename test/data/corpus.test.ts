import { describe, expect, it } from 'vitest';
import { packLanguageModeling, pretrainCorpus } from '../../src/data/index.js';
import { byteTokenizer } from '../../src/model/tokenizer.js';

describe('pretrainCorpus', () => {
  it('pretrainCorpus – holds the 233 State of the Union addresses then the Moby-Dick chapters, in order', () => {
    const corpus = pretrainCorpus();

    expect(corpus.documents).toHaveLength(233 + 138);
    expect(corpus.documents[0]).toMatch(/^Fellow-Citizens of the Senate and House of Representatives/);
    expect(corpus.documents[233]).toMatch(/^ETYMOLOGY\./);
    expect(corpus.documents[235]).toMatch(/^Call me Ishmael\./); // chapter 1
    expect(corpus.documents.some((d) => d.startsWith('CONTENTS'))).toBe(false);
    expect(corpus.documents.reduce((n, d) => n + d.length, 0)).toBeGreaterThan(11_000_000);
  });

  it('pretrainCorpus – is deterministic and cached', () => {
    expect(pretrainCorpus()).toBe(pretrainCorpus());
  });

  it('pretrainCorpus – packs into one eot-separated byte stream', () => {
    const docs = pretrainCorpus().documents.slice(233, 236);
    const tok = byteTokenizer();

    const stream = packLanguageModeling(docs, tok, 64);

    const eots = stream.reduce((n, id) => n + (id === tok.eotId ? 1 : 0), 0);
    expect(eots).toBe(3);
    expect(stream[stream.length - 1]).toBe(tok.eotId);
  });
});
