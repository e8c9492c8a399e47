/**
 * Just enough RFC 822 / MIME to turn a raw mail into the text a classifier should see: "Subject: …\n" + readable
 * body. Other headers are dropped (Received:, Message-ID: … identify the mail server, not spam-ness, and would let a
 * model cheat). Handles header unfolding, RFC 2047 encoded-word subjects, multipart bodies (text parts only,
 * text/plain preferred in multipart/alternative), quoted-printable and base64 transfer encodings, common charsets
 * via TextDecoder, and a rough HTML-to-text pass. Pure string functions.
 */
import { TextDecoder, TextEncoder } from 'node:util';

/** A header block and its body. Header names are lower-cased; the first occurrence of a name wins. */
interface Part {
  readonly headers: ReadonlyMap<string, string>;
  readonly body: string;
}

interface ContentType {
  readonly type: string; // e.g. 'text/plain', lower-cased
  readonly params: ReadonlyMap<string, string>; // e.g. charset, boundary
}

const MAX_DEPTH = 8; // nested multiparts deeper than this are ignored (none in the corpus come close)

function parsePart(raw: string): Part {
  const split = /\r?\n\r?\n/.exec(raw);
  const head = split === null ? raw : raw.slice(0, split.index);
  const body = split === null ? '' : raw.slice(split.index + split[0].length);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // the mbox "From " line and other junk
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return { headers, body };
}

function contentType(part: Part): ContentType {
  const raw = part.headers.get('content-type') ?? 'text/plain';
  const [type = '', ...rest] = raw.split(';');
  const params = new Map<string, string>();
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    params.set(
      p.slice(0, eq).trim().toLowerCase(),
      p
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1'),
    );
  }
  return { type: type.trim().toLowerCase() || 'text/plain', params };
}

/** Text decoder for a MIME charset name; unknown or missing names fall back to Latin-1 (never throws). */
function decoderFor(charset: string | undefined): TextDecoder {
  try {
    return new TextDecoder((charset ?? 'latin1').toLowerCase().replace(/^3d/, ''));
  } catch {
    return new TextDecoder('latin1');
  }
}

const utf8 = new TextEncoder();

/** The string as bytes: code units < 256 already are bytes (8-bit mail text); other characters become UTF-8. */
function toBytes(s: string): Uint8Array {
  if (!/[^\u0000-\u00ff]/.test(s)) return Buffer.from(s, 'latin1');
  const out: number[] = [];
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 256) out.push(c);
    else out.push(...utf8.encode(ch));
  }
  return Uint8Array.from(out);
}

/** Quoted-printable (RFC 2045 §6.7) to bytes: "=XX" is a byte, "=" before a line break is a soft break. */
export function decodeQuotedPrintable(s: string): Uint8Array {
  return toBytes(
    s.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
  );
}

function decodeBody(part: Part, ct: ContentType): string {
  const cte = (part.headers.get('content-transfer-encoding') ?? '').toLowerCase();
  if (cte === 'quoted-printable') return decoderFor(ct.params.get('charset')).decode(decodeQuotedPrintable(part.body));
  if (cte === 'base64') return decoderFor(ct.params.get('charset')).decode(Buffer.from(part.body, 'base64'));
  return part.body; // 7bit / 8bit / binary: already text
}

/** Decodes RFC 2047 encoded words ("=?iso-8859-1?Q?Caf=E9?="); whitespace between adjacent words is dropped. */
export function decodeEncodedWords(header: string): string {
  return header
    .replace(/(\?=)\s+(=\?)/g, '$1$2')
    .replace(/=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g, (_, charset: string, enc: string, data: string) => {
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : decodeQuotedPrintable(data.replace(/_/g, ' '));
      return decoderFor(charset).decode(bytes);
    });
}

const ENTITIES: Readonly<Record<string, string>> = {
  nbsp: ' ',
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  copy: '©',
  reg: '®',
  trade: '™',
  euro: '€',
  pound: '£',
};

function fromCodePoint(n: number): string {
  return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : ' ';
}

/** Rough HTML to text: drops scripts, styles and comments, turns block tags into line breaks, decodes entities. */
export function htmlToText(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<(script|style|head)\b[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<\/?(br|p|div|tr|li|ul|ol|table|h[1-6]|blockquote|center|title)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#[0-9]+|#x[0-9a-f]+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] !== '#') return ENTITIES[e.toLowerCase()] ?? m;
      return fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
    });
}

/** Collapses runs of blanks, trims lines, and keeps at most one empty line in a row. */
function tidy(text: string): string {
  return text
    .replace(/[ \t\f\v\u00a0]+/g, ' ')
    .replace(/ ?\r?\n ?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function multipartChildren(part: Part, boundary: string): Part[] {
  const delimiter = `--${boundary}`;
  const children: Part[] = [];
  // Text before the first delimiter is the preamble, after "--boundary--" the epilogue; both are ignored.
  const chunks = part.body.split(/\r?\n/);
  let current: string[] | undefined;
  for (const line of chunks) {
    const trimmed = line.trimEnd();
    if (trimmed === delimiter || trimmed === `${delimiter}--`) {
      if (current !== undefined) children.push(parsePart(current.join('\n')));
      current = trimmed === delimiter ? [] : undefined;
      if (trimmed !== delimiter) break;
    } else if (current !== undefined) {
      current.push(line);
    }
  }
  if (current !== undefined) children.push(parsePart(current.join('\n'))); // unterminated final part
  return children;
}

/** Many spams send HTML, or plain text with an HTML tail, without a Content-Type header (nominally text/plain). */
function looksLikeHtml(text: string): boolean {
  return /<(!doctype\s+html|html|body)\b/i.test(text);
}

function partText(part: Part, depth: number): string {
  if (depth > MAX_DEPTH) return '';
  const ct = contentType(part);
  if (ct.type.startsWith('multipart/')) {
    const boundary = ct.params.get('boundary');
    if (boundary === undefined) return tidy(part.body);
    const children = multipartChildren(part, boundary);
    if (ct.type === 'multipart/alternative') {
      const plain = children.find((c) => contentType(c).type === 'text/plain');
      return partText(plain ?? children[children.length - 1] ?? part, depth + 1);
    }
    return children
      .map((c) => partText(c, depth + 1))
      .filter((t) => t !== '')
      .join('\n\n');
  }
  if (ct.type === 'message/rfc822') return partText(parsePart(part.body), depth + 1);
  if (!ct.type.startsWith('text/')) return ''; // images, attachments: nothing a text model can use
  const text = decodeBody(part, ct);
  return tidy(ct.type === 'text/html' || looksLikeHtml(text) ? htmlToText(text) : text);
}

/** The model text of a raw RFC 822 mail: "Subject: <decoded subject>\n<readable body>". */
export function mailToText(raw: string): string {
  const mail = parsePart(raw);
  const subject = tidy(decodeEncodedWords(mail.headers.get('subject') ?? ''));
  return `Subject: ${subject}\n${partText(mail, 0)}`;
}
