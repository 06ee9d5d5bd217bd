import fs from 'node:fs';

/**
 * File names are bytes; JS strings are UTF-16. A name that is valid UTF-8 is its plain string, so
 * every path, cache key and digest of such names is what it always was. A byte that is not part
 * of valid UTF-8 becomes the lone surrogate U+DC00 + the byte (U+DC80..U+DCFF: Python's
 * surrogateescape, PEP 383), which decoding valid UTF-8 never yields. nameFromBytes and nameBytes
 * are inverses, so no two byte names share a string; hostPath hands fs calls the exact bytes.
 */

/** `s` holds an escaped byte (a lone surrogate); a plain string needs no conversion. */
export function hasEscapes(s: string): boolean {
  return !(s as string & { isWellFormed(): boolean }).isWellFormed();
}

/** Length of the valid UTF-8 sequence at `b[i]`, or 0 when the byte there starts none. */
function sequence(b: Uint8Array, i: number, end: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < end && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    // no overlong forms (E0 80..9F) and no surrogates (ED A0..BF)
    const ok = c === 0xe0 ? cont(1, 0xa0) : c === 0xed ? cont(1, 0x80, 0x9f) : cont(1);
    return ok && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const ok = c === 0xf0 ? cont(1, 0x90) : c === 0xf4 ? cont(1, 0x80, 0x8f) : cont(1);
    return ok && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/** The name of bytes `b[start, end)`: UTF-8, each byte outside a valid sequence escaped. */
export function nameFromBytes(b: Buffer, start = 0, end = b.length): string {
  const plain = b.toString('utf8', start, end);
  if (!plain.includes('\ufffd')) return plain; // valid (U+FFFD is what invalid bytes decode to)
  const out: string[] = [];
  let run = start;
  for (let i = start; i < end;) {
    const n = sequence(b, i, end);
    if (n) {
      i += n;
      continue;
    }
    if (run < i) out.push(b.toString('utf8', run, i));
    out.push(String.fromCharCode(0xdc00 + b[i]!));
    run = ++i;
  }
  if (run < end) out.push(b.toString('utf8', run, end));
  return out.join('');
}

/** The bytes of name `s` (nameFromBytes's inverse). */
export function nameBytes(s: string): Buffer {
  if (!hasEscapes(s)) return Buffer.from(s);
  const parts: Buffer[] = [];
  let run = '';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && c >= 0xdc80 && c <= 0xdcff) {
      if (run) parts.push(Buffer.from(run));
      run = '';
      parts.push(Buffer.from([c - 0xdc00]));
    } else run += ch;
  }
  if (run) parts.push(Buffer.from(run));
  return Buffer.concat(parts);
}

/** A path for node:fs: the string itself, or its bytes when it holds escaped bytes. */
export function hostPath(s: string): string | Buffer {
  return hasEscapes(s) ? nameBytes(s) : s;
}

/** readlink(2) of `p` as a name (the target's bytes kept, where fs.readlinkSync would decode them lossily). */
export function readlinkName(p: string): string {
  return nameFromBytes(fs.readlinkSync(hostPath(p), 'buffer'));
}
