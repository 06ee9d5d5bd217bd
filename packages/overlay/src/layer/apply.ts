/**
 * Unpack an OCI layer tar into a directory (the upper dir of an overlay snapshot, or a full copy
 * for the native driver), converting OCI whiteouts to the on-disk convention and refusing hostile
 * input (E_LAYER_UNSAFE) without writing outside `dir`.
 *
 * Node has no mknod/mkfifo/xattr calls: device nodes, fifos and overlay whiteouts (char 0/0) are
 * collected and created at the end by one GNU `tar -x` of a tar we generate from validated paths;
 * xattrs (incl. the opaque marker) by one `setfattr --restore`. So a layer costs two processes at
 * most, whatever its size.
 */
import * as fsync from 'node:fs';
import { promises as fs, createWriteStream, constants as C } from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { VlabError } from '@vlab/errors';
import type { WhiteoutMode } from '../types.ts';
import { ByteReader, readTar, encodeHeader, END_OF_ARCHIVE, type TarEntry, type ReadLimits } from './tar-format.ts';
import { isRealRoot, run, writeXattrs } from '../sys.ts';

export interface ApplyOptions extends ReadLimits {
  whiteouts: WhiteoutMode;
  /** Opaque-directory xattr for 'overlay' whiteouts; default trusted.overlay.opaque as real root, user.overlay.opaque otherwise. */
  opaqueXattr?: string;
  /** Create char/block devices (default: only as real root); refused with E_LAYER_UNSAFE otherwise. */
  allowDevices?: boolean;
}

const WH = '.wh.';
const OPQ = '.wh..wh..opq';

function unsafe(message: string, name: string): never {
  throw new VlabError('E_LAYER_UNSAFE', `refusing layer entry ${JSON.stringify(name)}: ${message}`, { details: { name } });
}

/** Normalise an archive path to components; refuses absolute paths, `..`, NUL. '' = the root. */
export function cleanPath(name: string): string[] {
  if (name.includes('\0')) unsafe('NUL in path', name);
  if (name.startsWith('/')) unsafe('absolute path', name);
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) unsafe('".." component', name);
  if (parts.some((c) => Buffer.byteLength(c) > 255)) unsafe('path component longer than 255 bytes', name);
  if (Buffer.byteLength(name) > 4096) unsafe('path longer than 4096 bytes', name);
  return parts;
}

// Metadata calls are synchronous: each async fs call is a thread-pool round trip, and a layer
// is thousands of tiny operations. apply() yields to the event loop every BATCH entries.
const BATCH = 64;
const SMALL = 256 * 1024;

function lstatOrUndef(p: string) {
  try { return fsync.lstatSync(p); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; throw e; }
}

class Applier {
  private created = new Set<string>(); // rel paths written by this layer
  private dirs = new Map<string, TarEntry>(); // abs dir -> header, metadata applied last
  private specials: { rel: string; h: TarEntry }[] = [];
  private specialSet = new Set<string>();
  private xattrs: { path: string; name: string; value: Buffer }[] = [];
  private root = isRealRoot();
  private opaque: string;
  constructor(private dir: string, private opts: ApplyOptions) {
    this.opaque = opts.opaqueXattr ?? (this.root ? 'trusted.overlay.opaque' : 'user.overlay.opaque');
  }

  /**
   * Resolve directory components inside the root, creating missing ones (0755). A symlink met on
   * the way is followed only if its target stays inside the root (absolute targets are taken
   * relative to the root, as in a chroot); one that leads out is refused.
   */
  private resolveDir(parts: string[], name: string, hops = 0): string {
    let cur = this.dir;
    for (let i = 0; i < parts.length; i++) {
      const p = path.join(cur, parts[i]);
      const st = lstatOrUndef(p);
      if (!st) { fsync.mkdirSync(p, { mode: 0o755 }); cur = p; continue; }
      if (st.isDirectory()) { cur = p; continue; }
      if (st.isSymbolicLink()) {
        if (hops > 40) unsafe('too many symlinks', name);
        const target = fsync.readlinkSync(p);
        const base = target.startsWith('/') ? [] : path.relative(this.dir, cur).split('/').filter(Boolean);
        const joined: string[] = [...base];
        for (const c of target.split('/')) {
          if (c === '' || c === '.') continue;
          if (c === '..') { if (!joined.length) unsafe(`symlink ${parts.slice(0, i + 1).join('/')} points outside the layer root`, name); joined.pop(); }
          else joined.push(c);
        }
        return this.resolveDir([...joined, ...parts.slice(i + 1)], name, hops + 1);
      }
      // a non-directory where a directory is needed: replace it (OCI: remove, then create)
      fsync.rmSync(p, { force: true });
      fsync.mkdirSync(p, { mode: 0o755 });
      cur = p;
    }
    return cur;
  }

  private clear(abs: string, keepDir: boolean): void {
    const st = lstatOrUndef(abs);
    if (!st) return;
    if (st.isDirectory() && keepDir) return;
    this.dirs.delete(abs);
    fsync.rmSync(abs, { recursive: true, force: true });
  }

  private meta(abs: string, h: TarEntry, symlink = false): void {
    if (this.root) fsync.lchownSync(abs, h.uid, h.gid);
    if (!symlink) fsync.chmodSync(abs, h.mode & 0o7777); // after chown, which clears setuid
    fsync.lutimesSync(abs, h.mtime, h.mtime);
  }

  private collectXattrs(abs: string, h: TarEntry): void {
    for (const [k, v] of h.xattrs) {
      if (/^(trusted|user)\.overlay\./.test(k)) continue; // never let a layer forge overlay metadata
      if (!this.root && !k.startsWith('user.')) continue;
      this.xattrs.push({ path: abs, name: k, value: v });
    }
  }

  async entry(h: TarEntry, body: () => AsyncGenerator<Buffer>): Promise<void> {
    const parts = cleanPath(h.name);
    if (!parts.length) return; // the root itself: its metadata belongs to the parent snapshot
    const base = parts[parts.length - 1];
    const parentParts = parts.slice(0, -1);
    const rel = parts.join('/');
    if (base.startsWith(WH)) return this.whiteout(parentParts, base, h);
    if ((h.type === 'char' || h.type === 'block') && !(this.opts.allowDevices ?? this.root)) unsafe('device nodes are not allowed here (not root)', h.name);
    const parent = this.resolveDir(parentParts, h.name);
    const abs = path.join(parent, base);
    this.created.add(rel);
    switch (h.type) {
      case 'dir': {
        this.clear(abs, true);
        if (!lstatOrUndef(abs)) fsync.mkdirSync(abs, { mode: 0o700 });
        this.dirs.set(abs, h);
        this.collectXattrs(abs, h);
        return;
      }
      case 'file': {
        this.clear(abs, false);
        if (h.size <= SMALL) {
          const parts: Buffer[] = [];
          for await (const chunk of body()) parts.push(chunk);
          // O_EXCL: never follows a symlink planted at the target
          const fd = fsync.openSync(abs, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
          try {
            const data = parts.length === 1 ? parts[0] : Buffer.concat(parts);
            for (let off = 0; off < data.length;) off += fsync.writeSync(fd, data, off);
          } finally {
            fsync.closeSync(fd);
          }
        } else {
          const ws = createWriteStream(abs, { flags: 'wx', mode: 0o600 });
          for await (const chunk of body()) if (!ws.write(chunk)) await once(ws, 'drain');
          ws.end();
          await once(ws, 'close');
        }
        this.meta(abs, h);
        this.collectXattrs(abs, h);
        return;
      }
      case 'symlink': {
        this.clear(abs, false);
        fsync.symlinkSync(h.linkname, abs);
        this.meta(abs, h, true);
        this.collectXattrs(abs, h);
        return;
      }
      case 'link': {
        const tparts = cleanPath(h.linkname);
        if (!tparts.length) unsafe('hard link to the root', h.name);
        const trel = tparts.join('/');
        this.clear(abs, false);
        if (this.specialSet.has(trel)) { this.addSpecial(rel, h, abs); return; }
        const tparent = this.resolveDir(tparts.slice(0, -1), h.name);
        const tabs = path.join(tparent, tparts[tparts.length - 1]);
        const st = lstatOrUndef(tabs);
        if (!st) throw new VlabError('E_LAYER_INVALID', `hard link ${h.name} to missing ${h.linkname}`, { details: { name: h.name } });
        if (st.isDirectory()) unsafe('hard link to a directory', h.name);
        fsync.linkSync(tabs, abs);
        return;
      }
      default: // char, block, fifo
        this.clear(abs, false);
        this.addSpecial(rel, h, abs);
        this.collectXattrs(abs, h);
    }
  }

  private addSpecial(rel: string, h: TarEntry, abs: string): void {
    this.specials.push({ rel: path.relative(this.dir, abs), h: h.type === 'link' ? { ...h, linkname: this.realRel(h.linkname) } : h });
    this.specialSet.add(rel);
  }

  private realRel(name: string): string {
    const s = this.specials.find((x) => x.rel === cleanPath(name).join('/'));
    return s ? s.rel : cleanPath(name).join('/');
  }

  private async whiteout(parentParts: string[], base: string, h: TarEntry): Promise<void> {
    if (h.type !== 'file' && h.type !== 'link') unsafe('whiteout that is not a regular file', h.name);
    const parent = this.resolveDir(parentParts, h.name);
    const prel = parentParts.join('/');
    if (base === OPQ) {
      if (this.opts.whiteouts === 'overlay') {
        this.xattrs.push({ path: parent, name: this.opaque, value: Buffer.from('y') });
      } else {
        for (const n of fsync.readdirSync(parent)) {
          if (!this.created.has(prel ? `${prel}/${n}` : n)) fsync.rmSync(path.join(parent, n), { recursive: true, force: true });
        }
      }
      return;
    }
    const name = base.slice(WH.length);
    if (!name || name === '.' || name === '..' || name.startsWith(WH)) unsafe('invalid whiteout name', h.name);
    const rel = prel ? `${prel}/${name}` : name;
    if (this.created.has(rel)) return; // whiteouts only hide lower layers
    const abs = path.join(parent, name);
    this.clear(abs, false);
    if (this.opts.whiteouts === 'overlay') {
      this.addSpecial(rel, { ...h, type: 'char', devmajor: 0, devminor: 0, mode: 0, size: 0 }, abs);
    }
  }

  async finish(): Promise<void> {
    if (this.specials.length) {
      // one GNU tar process creates every node; names were validated and resolved above
      const blocks = this.specials.map(({ rel, h }) => encodeHeader({ ...h, name: rel, size: 0, xattrs: new Map() }));
      const r = await run('tar', ['-x', '-f', '-', '-C', this.dir, '--numeric-owner', '--no-overwrite-dir', ...(this.root ? ['-p', '--same-owner'] : [])], {
        input: Buffer.concat([...blocks, END_OF_ARCHIVE]),
      });
      if (r.code !== 0) throw new VlabError('E_LAYER_APPLY', `creating device nodes/whiteouts failed: ${r.stderr.trim()}`);
    }
    await writeXattrs(this.xattrs);
    // directories last, deepest first, so writing children did not disturb their mtimes/modes
    const dirs = [...this.dirs].sort((a, b) => b[0].length - a[0].length);
    for (const [abs, h] of dirs) this.meta(abs, h);
  }
}

/**
 * Unpack layer `tar` into `dir`. Returns the diffID (sha256 of every byte read) and size.
 * Errors: E_LAYER_UNSAFE (hostile entry), E_LAYER_INVALID (malformed), E_LAYER_UNSUPPORTED
 * (sparse and unknown entry types). On error, what was written so far stays inside `dir`.
 */
export async function apply(tar: Readable | NodeJS.ReadableStream, dir: string, opts: ApplyOptions): Promise<{ diffId: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  const reader = new ByteReader(tar as AsyncIterable<Buffer>, (b) => { h.update(b); size += b.length; });
  const root = await fs.realpath(dir);
  const a = new Applier(root, opts);
  let n = 0;
  for await (const e of readTar(reader, opts)) {
    await a.entry(e.header, e.body);
    if (++n % BATCH === 0) await new Promise<void>((res) => setImmediate(res));
  }
  await reader.drain();
  await a.finish();
  return { diffId: `sha256:${h.digest('hex')}`, size };
}
