/** Test helpers for the data tests: temp files and tiny in-memory data sets. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { DataFileError } from '../../src/data/errors.js';
import { makeDataset, makeExample, type LabeledDataset } from '../../src/data/dataset.js';

/** A temp directory removed after the test file; `write(name, text)` returns the file's path. */
export function tempFiles(): { write(name: string, text: string): string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lethe-data-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    write(name: string, text: string): string {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
  };
}

/** `perLabel[k]` examples of label k, texts "k:i", meta.group cycling over `groups`. */
export function syntheticDataset(perLabel: readonly number[], groups: readonly string[] = ['g0']): LabeledDataset {
  const examples = perLabel.flatMap((count, label) =>
    Array.from({ length: count }, (_, i) => makeExample(`${label}:${i}`, label, { group: groups[i % groups.length]! })),
  );
  return makeDataset(
    'synthetic',
    perLabel.map((_, k) => `c${k}`),
    examples,
  );
}

/** Awaits a rejection and returns it as a DataFileError (fails the test on success or any other error). */
export async function fileError(p: Promise<unknown>): Promise<DataFileError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataFileError);
  return err as DataFileError;
}
