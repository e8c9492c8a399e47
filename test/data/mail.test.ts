import { describe, expect, it } from 'vitest';
import { decodeEncodedWords, decodeQuotedPrintable, htmlToText, mailToText } from '../../src/data/mail.js';

const HEADERS = [
  'From spammer@example.com  Thu Aug 22 13:17:22 2002',
  'Received: from mail.example.com (mail [10.0.0.1])',
  '\tby mx.example.org with ESMTP id 1234',
  'Subject: Cheap',
  '  meds online',
  'Message-ID: <1@example.com>',
];

describe('mailToText', () => {
  it('mailToText – keeps the unfolded subject and the body, dropping every other header', () => {
    const raw = [...HEADERS, '', 'Buy now.', 'Really.'].join('\n');

    expect(mailToText(raw)).toBe('Subject: Cheap meds online\nBuy now.\nReally.');
  });

  it('mailToText – decodes a quoted-printable HTML body in its charset and strips the markup', () => {
    const raw = [
      ...HEADERS,
      'Content-Type: text/html; charset="iso-8859-1"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      '<html><head><title>t</title><style>p{color:red}</style></head><body><p>Caf=E9 deals =',
      'today!</p><br><a href=3D"http://x">Click&nbsp;here</a> &amp; save</body></html>',
    ].join('\n');

    expect(mailToText(raw)).toBe('Subject: Cheap meds online\nCafé deals today!\n\nClick here & save');
  });

  it('mailToText – prefers text/plain in multipart/alternative and decodes base64 parts', () => {
    const plain = Buffer.from('Plain words – with a dash', 'utf8').toString('base64');
    const raw = [
      ...HEADERS,
      'Content-Type: multipart/alternative; boundary="XYZ"',
      '',
      'preamble to ignore',
      '--XYZ',
      'Content-Type: text/html',
      '',
      '<b>html words</b>',
      '--XYZ',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      plain,
      '--XYZ--',
      'epilogue to ignore',
    ].join('\n');

    expect(mailToText(raw)).toBe('Subject: Cheap meds online\nPlain words – with a dash');
  });

  it('mailToText – joins the text parts of multipart/mixed and skips binary attachments', () => {
    const raw = [
      ...HEADERS,
      'Content-Type: multipart/mixed; boundary=b1',
      '',
      '--b1',
      'Content-Type: text/plain',
      '',
      'first part',
      '--b1',
      'Content-Type: image/gif',
      'Content-Transfer-Encoding: base64',
      '',
      'R0lGODlhAQABAAAAACw=',
      '--b1',
      'Content-Type: text/plain',
      '',
      'second part',
      '--b1--',
    ].join('\n');

    expect(mailToText(raw)).toBe('Subject: Cheap meds online\nfirst part\n\nsecond part');
  });

  it('mailToText – a mail without a subject gets an empty Subject line', () => {
    expect(mailToText('From: a@b\n\nhello')).toBe('Subject: \nhello');
  });
});

describe('mail helpers', () => {
  it('decodeEncodedWords – decodes Q and B encoded words and joins adjacent ones', () => {
    expect(decodeEncodedWords('=?iso-8859-1?Q?Caf=E9_au_lait?= =?utf-8?B?4pyT?= ok')).toBe('Café au lait✓ ok');
  });

  it('decodeQuotedPrintable – removes soft line breaks and decodes =XX bytes', () => {
    expect(Buffer.from(decodeQuotedPrintable('a=3Db=\nc=E9')).toString('latin1')).toBe('a=bcé');
  });

  it('htmlToText – drops comments and scripts and decodes numeric entities', () => {
    expect(htmlToText('<!-- x --><script>var a=1;</script>A&#66;&#x43;').trim()).toBe('ABC');
  });
});
