import { describe, expect, it } from 'vitest';
import { labelCounts, partitionByMeta, spamAssassin } from '../../src/data/index.js';

describe('spamAssassin', () => {
  // One load serves the whole file (the function caches; the first call parses 6046 mails, ~1 s).
  const started = performance.now();
  const ds = spamAssassin();
  const loadMs = performance.now() - started;

  it('spamAssassin – has 6046 mails, 1896 of them spam, labelled [ham, spam]', () => {
    expect(ds.examples).toHaveLength(6046);
    expect(ds.labels).toEqual(['ham', 'spam']);
    expect(labelCounts(ds)).toEqual([4150, 1896]);
  });

  it('spamAssassin – keeps the mail group in meta and labels exactly the spam groups as spam', () => {
    const groups = partitionByMeta(ds, 'group');

    expect([...groups].map(([g, part]) => [g, part.examples.length, labelCounts(part)[1]])).toEqual([
      ['easy-ham-1', 2500, 0],
      ['easy-ham-2', 1400, 0],
      ['hard-ham-1', 250, 0],
      ['spam-1', 500, 500],
      ['spam-2', 1396, 1396],
    ]);
  });

  it('spamAssassin – texts are a Subject line plus body, without mail-server headers', () => {
    const headerLine = /^(Received|Return-Path|Delivered-To|Message-I[Dd]|X-Mailer|Content-Type):/m;

    const withHeaders = ds.examples.filter((e) => headerLine.test(e.text));

    expect(ds.examples.every((e) => e.text.startsWith('Subject: '))).toBe(true);
    // Only mails that quote other mails in their body (bounces, forwards, debug logs) still contain such lines.
    expect(withHeaders.length).toBeLessThan(60);
  });

  it('spamAssassin – decodes quoted-printable HTML bodies into plain text', () => {
    // spam-1/00001 is a quoted-printable text/html mail ("Life Insurance - Why Pay More?").
    const mail = ds.examples.find((e) => e.meta.group === 'spam-1' && e.meta.id === '00001')!;

    expect(mail.text).toMatch(/^Subject: Life Insurance - Why Pay More\?\nSave up to 70% on Life Insurance\./);
    expect(mail.text).not.toMatch(/<[a-zA-Z]|=3D|&nbsp;/);
  });

  it('spamAssassin – repeated calls return the same cached, frozen data set quickly', () => {
    const again = performance.now();

    const second = spamAssassin();

    expect(second).toBe(ds);
    expect(performance.now() - again).toBeLessThan(5);
    expect(Object.isFrozen(ds.examples) && Object.isFrozen(ds.examples[0])).toBe(true);
    expect(loadMs).toBeLessThan(20_000); // about 1 s on a laptop core; generous for slow CI
  });
});
