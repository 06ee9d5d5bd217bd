/**
 * Minimal ustar/PAX codec for OCI layers (no dependency).
 *
 * Why not tar-stream here: its PAX decoder turns every record value into a UTF-8 string, which
 * corrupts binary xattrs (security.capability), ignores PAX uid/gid/mtime, and its encoder silently
 * writes 7777777 for uids above 2^21. Layers need all three exact, so the header codec is ours;
 * tar-stream is still used by the tests to build hostile archives.
 */
import { VlabError } from '@vlab/errors';
import { nameBytes, nameFromBytes } from '../fsname.ts';

export type EntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntry {
  name: string; // as in the archive (may hold ./, trailing /)
  type: EntryType;
  mode: number; // permission bits incl. setuid/setgid/sticky
  uid: number;
  gid: number;
  size: number;
  mtime: number; // seconds (may be fractional when PAX said so)
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
}

export const BLOCK = 512;

/** An entry with no metadata of its own (mode 0, owner 0, mtime 0, no size): whiteouts, implied dirs. */
export function bareEntry(name: string, type: EntryType, mode = 0): TarEntry {
  return {
    name,
    type,
    mode,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 0,
    linkname: '',
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
  };
}

function octal(buf: Buffer, off: number, len: number, value: number): boolean {
  const s = Math.max(0, Math.floor(value)).toString(8);
  if (s.length > len - 1) return false;
  buf.write(s.padStart(len - 1, '0'), off, 'ascii');
  buf[off + len - 1] = 0;
  return true;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function ustar(name: Buffer, h: TarEntry, typeflag: string, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  name.copy(b, 0, 0, Math.min(100, name.length));
  octal(b, 100, 8, h.mode & 0o7777);
  if (!octal(b, 108, 8, h.uid)) octal(b, 108, 8, 0);
  if (!octal(b, 116, 8, h.gid)) octal(b, 116, 8, 0);
  if (!octal(b, 124, 12, size)) {
    // base-256 for readers without PAX; PAX `size` is authoritative
    b[124] = 0x80;
    let n = size;
    for (let i = 11; i > 0; i--) {
      b[124 + i] = n % 256;
      n = Math.floor(n / 256);
    }
  }
  if (!octal(b, 136, 12, h.mtime)) octal(b, 136, 12, 0);
  b.write(typeflag, 156, 'ascii');
  const link = nameBytes(h.linkname ?? '');
  link.copy(b, 157, 0, Math.min(100, link.length));
  b.write('ustar\u000000', 257, 'binary');
  if (h.type === 'char' || h.type === 'block') {
    octal(b, 329, 8, h.devmajor);
    octal(b, 337, 8, h.devminor);
  }
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 'binary');
  return b;
}

const TYPEFLAG: Record<EntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

/** Header block(s) for one entry: a PAX extended header first when a field does not fit ustar. */
export function encodeHeader(h: TarEntry): Buffer {
  const name = nameBytes(h.name);
  const link = nameBytes(h.linkname ?? '');
  const ascii = (b: Buffer) => b.every((c) => c > 0 && c < 0x80);
  const recs: Buffer[] = [];
  if (name.length > 100 || !ascii(name)) recs.push(paxRecord('path', name));
  if (link.length > 100 || (link.length && !ascii(link))) recs.push(paxRecord('linkpath', link));
  if (h.size > 0o77777777777) recs.push(paxRecord('size', Buffer.from(String(h.size))));
  if (h.uid > 0o7777777) recs.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (h.gid > 0o7777777) recs.push(paxRecord('gid', Buffer.from(String(h.gid))));
  for (const k of [...h.xattrs.keys()].sort()) recs.push(paxRecord(`SCHILY.xattr.${k}`, h.xattrs.get(k)!));
  const main = ustar(name, h, TYPEFLAG[h.type], h.type === 'file' ? h.size : 0);
  if (!recs.length) return main;
  // records sorted by key for byte-stable output
  recs.sort((a, b) => Buffer.compare(a.subarray(a.indexOf(32) + 1), b.subarray(b.indexOf(32) + 1)));
  const body = Buffer.concat(recs);
  const base = h.name.replace(/\/$/, '').split('/').pop() ?? '';
  const paxName = Buffer.from(`PaxHeaders.0/${base}`.slice(0, 100).replace(/[^\x20-\x7e]/g, '_'));
  const paxHead = ustar(paxName, { ...h, mode: 0o644, type: 'file', linkname: '' }, 'x', body.length);
  return Buffer.concat([paxHead, body, Buffer.alloc(padding(body.length)), main]);
}

export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

// ---------------------------------------------------------------------------------------------
// Reading

export interface ReadLimits {
  /** Largest file entry accepted (bytes). Default 64 GiB. */
  maxEntrySize?: number;
  /**
   * Largest extended header (PAX, GNU long name) accepted, and the most bytes of them that may
   * come before one entry, together (Go's archive/tar also stops at 1 MiB). Default 1 MiB.
   */
  maxHeaderSize?: number;
}

/** The kernel's limits on one inode's xattrs (XATTR_LIST_MAX for the names, XATTR_SIZE_MAX per value). */
const XATTR_LIST_MAX = 65536;
const XATTR_SIZE_MAX = 65536;

function bad(message: string, details?: Record<string, unknown>): never {
  throw new VlabError('E_LAYER_INVALID', message, { details });
}

function numeric(b: Buffer, off: number, len: number, field: string): number {
  const f = b.subarray(off, off + len);
  if (f[0] & 0x80) {
    if (f[0] === 0xff) bad(`negative ${field} in tar header`);
    let n = 0;
    for (let i = 1; i < len; i++) n = n * 256 + f[i];
    n += (f[0] & 0x7f) * 256 ** (len - 1);
    if (!Number.isSafeInteger(n)) bad(`absurd ${field} in tar header`);
    return n;
  }
  const s = f.toString('latin1').replace(/\0.*$/s, '').trim();
  if (!s) return 0;
  if (!/^[0-7]+$/.test(s)) bad(`bad ${field} field in tar header: ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function cstr(b: Buffer, off: number, len: number): string {
  const f = b.subarray(off, off + len);
  const z = f.indexOf(0);
  return nameFromBytes(f, 0, z < 0 ? len : z);
}

// The PAX keys a layer entry uses; any other record is checked for framing and dropped.
const KEPT_PAX = /^(?:path|linkpath|size|uid|gid|mtime)$|^(?:SCHILY\.xattr\.|GNU\.sparse\.)/;

/** Parse PAX records into `into` (later records win), in one pass over the bytes. */
function parsePax(buf: Buffer, into: Map<string, Buffer>): void {
  const n = buf.length;
  let p = 0;
  while (p < n && buf[p] !== 0) {
    // "LEN key=value\n", LEN in decimal counting the whole record
    let len = 0;
    let q = p;
    while (q < n && q - p < 10 && buf[q] >= 0x30 && buf[q] <= 0x39) len = len * 10 + buf[q++] - 0x30;
    if (q === p || buf[q] !== 0x20 || len <= q - p + 1 || p + len > n || buf[p + len - 1] !== 0x0a)
      bad('malformed PAX record length');
    const end = p + len - 1; // the newline
    const eq = buf.indexOf(0x3d, q + 1);
    if (eq < 0 || eq > end) bad('malformed PAX record');
    const key = buf.toString('utf8', q + 1, eq);
    if (KEPT_PAX.test(key)) into.set(key, Buffer.from(buf.subarray(eq + 1, end)));
    p += len;
  }
}

/** Buffered exact-size reads over a byte stream; every byte pulled is passed to `onBytes` (hashing). */
export class ByteReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private done = false;
  private pulled = 0;
  private it: AsyncIterator<Buffer | string>;
  constructor(
    src: AsyncIterable<Buffer | string>,
    private onBytes: (b: Buffer) => void,
  ) {
    this.it = src[Symbol.asyncIterator]();
  }
  private async fill(n: number): Promise<void> {
    while (this.have < n && !this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const b = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      if (!b.length) continue;
      this.onBytes(b);
      this.pulled += b.length;
      this.chunks.push(b);
      this.have += b.length;
    }
  }
  /** Offset in the input of the next byte to be returned. */
  get position(): number {
    return this.pulled - this.have;
  }
  /** Exactly n bytes, or fewer at end of input. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, Math.min(n, all.length));
    const rest = all.subarray(out.length);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    return out;
  }
  /** Up to n bytes as they arrive (streaming a file body). */
  async *stream(n: number): AsyncGenerator<Buffer> {
    while (n > 0) {
      if (!this.have) await this.fill(1);
      if (!this.have) bad('tar archive truncated inside a file');
      const c = this.chunks.shift()!;
      const take = c.subarray(0, Math.min(n, c.length));
      if (take.length < c.length) this.chunks.unshift(c.subarray(take.length));
      this.have -= take.length;
      n -= take.length;
      yield take;
    }
  }
  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n));
  }
  /** Consume everything left (so a digest covers the whole input). */
  async drain(): Promise<void> {
    this.chunks = [];
    this.have = 0;
    while (!this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.onBytes(typeof r.value === 'string' ? Buffer.from(r.value) : r.value);
    }
  }
}

export interface ReadEntry {
  header: TarEntry;
  /** File content; must be consumed (or skipped) before asking for the next entry. */
  body(): AsyncGenerator<Buffer>;
}

/** Iterate the entries of a tar stream. Throws E_LAYER_INVALID / E_LAYER_UNSUPPORTED / E_LAYER_UNSAFE. */
export async function* readTar(r: ByteReader, limits: ReadLimits = {}): AsyncGenerator<ReadEntry> {
  const maxEntry = limits.maxEntrySize ?? 64 * 2 ** 30;
  const maxHdr = limits.maxHeaderSize ?? 2 ** 20;
  let pax = new Map<string, Buffer>();
  let extBytes = 0; // extended header bytes since the last entry
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const b = await r.read(BLOCK);
    if (b.length === 0) return; // missing end blocks: tolerated
    if (b.length < BLOCK) bad('tar archive truncated inside a header');
    if (b.every((c) => c === 0)) {
      await r.drain();
      return;
    }
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i];
    if (numeric(b, 148, 8, 'checksum') !== sum) bad('tar header checksum mismatch');
    const flag = String.fromCharCode(b[156] || 48);
    let size = numeric(b, 124, 12, 'size');
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > maxHdr)
        throw new VlabError(
          'E_LAYER_UNSAFE',
          `tar extended header of ${size} bytes is too large (limit maxHeaderSize: ${maxHdr} bytes)`,
          { details: { size, limit: maxHdr } },
        );
      if (flag === 'g') {
        // global headers are ignored, as Docker and containerd do: nothing accumulates
        await r.skip(size + padding(size));
        continue;
      }
      extBytes += size;
      if (extBytes > maxHdr)
        throw new VlabError(
          'E_LAYER_UNSAFE',
          `tar extended headers before one entry exceed ${maxHdr} bytes (limit maxHeaderSize)`,
          { details: { size: extBytes, limit: maxHdr } },
        );
      const data = await r.read(size + padding(size));
      if (data.length < size) bad('tar archive truncated inside an extended header');
      const payload = data.subarray(0, size);
      if (flag === 'x') parsePax(payload, pax);
      else if (flag === 'L') longName = cstr(payload, 0, payload.length);
      else longLink = cstr(payload, 0, payload.length);
      continue;
    }
    const all = pax;
    pax = new Map();
    extBytes = 0;
    const magic = b.subarray(257, 263).toString('latin1');
    let name = cstr(b, 0, 100);
    if (magic === 'ustar\u0000') {
      const prefix = cstr(b, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    if (longName !== undefined) name = longName;
    let linkname = longLink ?? cstr(b, 157, 100);
    longName = longLink = undefined;
    const str = (k: string) => all.get(k)?.toString('utf8');
    const num = (k: string) => {
      const v = str(k);
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0 || !/^[0-9]+(\.[0-9]*)?$/.test(v)) bad(`bad PAX ${k}: ${v}`);
      return n;
    };
    const named = (k: string) => {
      const v = all.get(k);
      return v === undefined ? undefined : nameFromBytes(v);
    };
    name = named('path') ?? name;
    linkname = named('linkpath') ?? linkname;
    size = num('size') ?? size;
    if ([...all.keys()].some((k) => k.startsWith('GNU.sparse'))) {
      throw new VlabError('E_LAYER_UNSUPPORTED', `sparse tar entry ${name} is not supported in layers`);
    }
    const types: Record<string, EntryType> = {
      '0': 'file',
      '7': 'file',
      '1': 'link',
      '2': 'symlink',
      '3': 'char',
      '4': 'block',
      '5': 'dir',
      '6': 'fifo',
    };
    let type = types[flag];
    if (!type) {
      throw new VlabError('E_LAYER_UNSUPPORTED', `tar entry ${name} has unsupported type '${flag}'`, {
        details: { typeflag: flag },
      });
    }
    if (type === 'file' && name.endsWith('/')) type = 'dir'; // pre-POSIX directories
    // No link can be made to '' or to a name holding NUL (found by bench/fuzz.ts: apply failed with ENOENT).
    if ((type === 'symlink' || type === 'link') && (!linkname || linkname.includes('\0')))
      bad(`tar entry ${name}: ${type} without a valid target`, { name });
    const xattrs = new Map<string, Buffer>();
    let names = 0;
    for (const [k, v] of all) {
      if (!k.startsWith('SCHILY.xattr.')) continue;
      xattrs.set(k.slice(13), v);
      names += Buffer.byteLength(k) - 13 + 1;
      if (v.length > XATTR_SIZE_MAX)
        bad(`tar entry ${name}: xattr ${k.slice(13)} has ${v.length} bytes (limit XATTR_SIZE_MAX: ${XATTR_SIZE_MAX})`, {
          name,
        });
    }
    if (names > XATTR_LIST_MAX)
      bad(`tar entry ${name}: its xattr names take ${names} bytes (limit XATTR_LIST_MAX: ${XATTR_LIST_MAX})`, { name });
    if (type !== 'file') size = type === 'link' || type === 'symlink' || type === 'dir' || size === 0 ? 0 : size;
    if (size > maxEntry) {
      throw new VlabError('E_LAYER_UNSAFE', `tar entry ${name} claims ${size} bytes (limit ${maxEntry})`, {
        details: { name, size },
      });
    }
    const header: TarEntry = {
      name,
      type,
      size,
      linkname,
      xattrs,
      mode: numeric(b, 100, 8, 'mode') & 0o7777,
      uid: num('uid') ?? numeric(b, 108, 8, 'uid'),
      gid: num('gid') ?? numeric(b, 116, 8, 'gid'),
      mtime: num('mtime') ?? numeric(b, 136, 12, 'mtime'),
      devmajor: type === 'char' || type === 'block' ? numeric(b, 329, 8, 'devmajor') : 0,
      devminor: type === 'char' || type === 'block' ? numeric(b, 337, 8, 'devminor') : 0,
    };
    const dataSize = size;
    let remaining = size;
    yield {
      header,
      body: async function* () {
        for await (const c of r.stream(remaining)) {
          remaining -= c.length;
          yield c;
        }
      },
    };
    await r.skip(remaining);
    await r.skip(padding(dataSize));
  }
}
