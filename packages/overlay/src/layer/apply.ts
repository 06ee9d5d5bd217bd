/**
 * Unpack an OCI layer tar into a directory (the upper dir of an overlay snapshot, or a full copy
 * for the native driver), converting OCI whiteouts to the on-disk convention and refusing hostile
 * input (E_LAYER_UNSAFE) without writing outside `dir`.
 *
 * Files, symlinks and hard links are made as their entries come, each under a parent resolved in
 * the root just then. What must wait for the end of the layer (directory metadata, device nodes,
 * fifos, whiteouts, xattrs: see pending.ts) is recorded by path and done through fds opened in the
 * root, after a later entry that replaced a path has dropped what was recorded below it. So a
 * layer costs two processes at most, whatever its size.
 */
import { isLayerXattr } from './xattr-rule.ts';
import * as fsync from 'node:fs';
import { promises as fs, constants as C } from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { VlabError } from '@vlab/errors';
import type { WhiteoutMode } from '../types.ts';
import { ByteReader, readTar, type TarEntry, type ReadLimits } from './tar-format.ts';
import { Pending } from './pending.ts';
import { isRealRoot } from '../sys.ts';
import { hostPath, nameFromBytes } from '../fsname.ts';
import { InRootDirs, atFd, removeAt } from '../in-root.ts';

export interface ApplyOptions extends ReadLimits {
  whiteouts: WhiteoutMode;
  /** Opaque-directory xattr for 'overlay' whiteouts; default trusted.overlay.opaque as real root, user.overlay.opaque otherwise. */
  opaqueXattr?: string;
  /** Create char/block devices (default: only as real root); refused with E_LAYER_UNSAFE otherwise. */
  allowDevices?: boolean;
  /**
   * `dir` is a directory pinned by the caller (`/proc/self/fd/N` of an fd it opened in-root and
   * keeps open): it is not realpath'ed, and every entry is made relative to its parent
   * directory's fd, each opened O_NOFOLLOW from its own parent's (InRootDirs); a replaced entry
   * is removed by an fd walk. For a tree a concurrent writer may change (ADD into a stage tree):
   * a directory swapped for a symlink meanwhile is E_LAYER_UNSAFE, nothing is written through it.
   */
  pinned?: boolean;
}

const WH = '.wh.';
const OPQ = '.wh..wh..opq';

function unsafe(message: string, name: string): never {
  throw new VlabError('E_LAYER_UNSAFE', `refusing layer entry ${JSON.stringify(name)}: ${message}`, {
    details: { name },
  });
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

function lstatOrUndef(p: string | Buffer) {
  try {
    return fsync.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

class Applier {
  private created = new Set<string>(); // resolved rel paths made by this layer
  private pending = new Pending();
  private root = isRealRoot();
  private opaque: string;
  /** opts.pinned: the directories of `dir`, each opened from its parent's fd. */
  private dirs?: InRootDirs;
  constructor(
    private dir: string,
    private opts: ApplyOptions,
  ) {
    this.opaque = opts.opaqueXattr ?? (this.root ? 'trusted.overlay.opaque' : 'user.overlay.opaque');
    if (opts.pinned) this.dirs = new InRootDirs(dir + '/.', 128);
  }

  /**
   * The host path of `parts`, as bytes when a name is not UTF-8 (fsname.ts). Pinned: the name in
   * its parent's fd (use it at once: a later dirs.dir() may close that fd).
   */
  private abs(parts: readonly string[]): string | Buffer {
    if (!this.dirs) return hostPath(path.join(this.dir, ...parts));
    if (!parts.length) return hostPath(this.dir);
    return hostPath(atFd(this.dirs.dir(parts.slice(0, -1)), parts[parts.length - 1]));
  }

  /** Directory `parts` itself (to read it): pinned, through its own fd. */
  private dirPath(parts: readonly string[]): string | Buffer {
    return this.dirs ? atFd(this.dirs.dir(parts), '.') : this.abs(parts);
  }

  /**
   * Resolve directory components inside the root, creating missing ones (0755); returns the real
   * components. A symlink met on the way is followed only if its target stays inside the root
   * (absolute targets are taken relative to the root, as in a chroot); one that leads out is refused.
   */
  private resolveDir(parts: string[], name: string, hops = 0): string[] {
    const cur: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      cur.push(parts[i]);
      const p = this.abs(cur);
      const st = lstatOrUndef(p);
      if (st?.isDirectory()) continue;
      if (st?.isSymbolicLink()) {
        if (hops > 40) unsafe('too many symlinks', name);
        const target = nameFromBytes(fsync.readlinkSync(p, 'buffer'));
        const joined: string[] = target.startsWith('/') ? [] : cur.slice(0, -1);
        for (const c of target.split('/')) {
          if (c === '' || c === '.') continue;
          if (c === '..') {
            if (!joined.length)
              unsafe(`symlink ${parts.slice(0, i + 1).join('/')} points outside the layer root`, name);
            joined.pop();
          } else joined.push(c);
        }
        return this.resolveDir([...joined, ...parts.slice(i + 1)], name, hops + 1);
      }
      // missing, or a non-directory where a directory is needed: replace it (OCI: remove, then create)
      if (st) this.clear(cur, false);
      this.pending.becomesDir(cur);
      fsync.mkdirSync(p, { mode: 0o755 });
      this.created.add(cur.join('/'));
    }
    return cur;
  }

  /** Remove what is at `parts` (unless it is a directory and `keepDir`), with what was recorded below it. */
  private clear(parts: string[], keepDir: boolean): void {
    const st = lstatOrUndef(this.abs(parts));
    if (st?.isDirectory() && keepDir) return;
    this.pending.drop(parts);
    if (st && this.dirs) removeAt(this.dirs.dir(parts.slice(0, -1)), parts[parts.length - 1]);
    else if (st) fsync.rmSync(this.abs(parts), { recursive: true, force: true });
  }

  /** Owner, mode and times through the fd of the file just written. */
  private fmeta(fd: number, h: TarEntry): void {
    if (this.root) fsync.fchownSync(fd, h.uid, h.gid);
    fsync.fchmodSync(fd, h.mode & 0o7777); // after chown, which clears setuid
    fsync.futimesSync(fd, h.mtime, h.mtime);
  }

  private collectXattrs(parts: string[], h: TarEntry): void {
    for (const [k, v] of h.xattrs) {
      if (!isLayerXattr(k)) continue; // overlay metadata and SELinux labels never come from a layer
      if (!this.root && !k.startsWith('user.')) continue;
      this.pending.xattr(parts, k, v);
    }
  }

  async entry(h: TarEntry, body: () => AsyncGenerator<Buffer>): Promise<void> {
    const parts = cleanPath(h.name);
    if (!parts.length) return; // the root itself: its metadata belongs to the parent snapshot
    const base = parts[parts.length - 1];
    if (base.startsWith(WH)) return this.whiteout(parts.slice(0, -1), base, h);
    if ((h.type === 'char' || h.type === 'block') && !(this.opts.allowDevices ?? this.root))
      unsafe('device nodes are not allowed here (not root)', h.name);
    const real = [...this.resolveDir(parts.slice(0, -1), h.name), base];
    const abs = this.abs(real);
    this.created.add(real.join('/'));
    switch (h.type) {
      case 'dir': {
        this.clear(real, true);
        this.pending.becomesDir(real);
        if (!lstatOrUndef(abs)) fsync.mkdirSync(abs, { mode: 0o700 });
        this.pending.dir(real, h);
        this.collectXattrs(real, h);
        return;
      }
      case 'file': {
        this.clear(real, false);
        // O_EXCL: never follows a symlink planted at the target
        const fd = fsync.openSync(abs, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
        try {
          if (h.size <= SMALL) {
            const chunks: Buffer[] = [];
            for await (const chunk of body()) chunks.push(chunk);
            const data = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
            for (let off = 0; off < data.length;) off += fsync.writeSync(fd, data, off);
          } else {
            for await (const chunk of body()) {
              for (let off = 0; off < chunk.length;) off += await writeAsync(fd, chunk, off);
            }
          }
          this.fmeta(fd, h);
        } finally {
          fsync.closeSync(fd);
        }
        this.collectXattrs(real, h);
        return;
      }
      case 'symlink': {
        this.clear(real, false);
        fsync.symlinkSync(hostPath(h.linkname), abs);
        if (this.root) fsync.lchownSync(abs, h.uid, h.gid);
        fsync.lutimesSync(abs, h.mtime, h.mtime);
        this.collectXattrs(real, h);
        return;
      }
      case 'link': {
        const tparts = cleanPath(h.linkname);
        if (!tparts.length) unsafe('hard link to the root', h.name);
        const treal = [...this.resolveDir(tparts.slice(0, -1), h.name), tparts[tparts.length - 1]];
        this.clear(real, false);
        if (this.pending.isNode(treal)) {
          this.pending.link(real, treal);
          return;
        }
        const tabs = this.abs(treal);
        const st = lstatOrUndef(tabs);
        if (!st)
          throw new VlabError('E_LAYER_INVALID', `hard link ${h.name} to missing ${h.linkname}`, {
            details: { name: h.name },
          });
        if (st.isDirectory()) unsafe('hard link to a directory', h.name);
        if (!this.dirs)
          fsync.linkSync(tabs, abs); // link(2) does not follow a symlink at tabs
        else this.linkPinned(treal, real);
        return;
      }
      default: // char, block, fifo
        this.clear(real, false);
        this.pending.node(real, h);
        this.collectXattrs(real, h);
    }
  }

  private async whiteout(parentParts: string[], base: string, h: TarEntry): Promise<void> {
    if (h.type !== 'file' && h.type !== 'link') unsafe('whiteout that is not a regular file', h.name);
    const parent = this.resolveDir(parentParts, h.name);
    if (base === OPQ) {
      if (this.opts.whiteouts === 'overlay') {
        this.pending.xattr(parent, this.opaque, Buffer.from('y'));
      } else {
        for (const n of fsync.readdirSync(this.dirPath(parent), 'buffer').map((b) => nameFromBytes(b))) {
          if (!this.created.has([...parent, n].join('/'))) this.clear([...parent, n], false);
        }
      }
      return;
    }
    const name = base.slice(WH.length);
    if (!name || name === '.' || name === '..' || name.startsWith(WH)) unsafe('invalid whiteout name', h.name);
    const real = [...parent, name];
    if (this.created.has(real.join('/'))) return; // whiteouts only hide lower layers
    this.clear(real, false);
    if (this.opts.whiteouts === 'overlay') {
      this.pending.node(real, { ...h, type: 'char', devmajor: 0, devminor: 0, mode: 0, size: 0 });
    }
  }

  /**
   * Pinned hard link: the target's parent held by an fd of its own while the link's parent is
   * opened (which may close fds the cache holds), so each path names the directory it was made for.
   */
  private linkPinned(target: string[], at: string[]): void {
    const own = fsync.openSync(this.dirPath(target.slice(0, -1)), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
    try {
      fsync.linkSync(hostPath(atFd(own, target[target.length - 1])), this.abs(at));
    } finally {
      fsync.closeSync(own);
    }
  }

  async finish(): Promise<void> {
    try {
      await this.pending.finish(this.dirs ? `${this.dir}/.` : this.dir, this.root);
    } finally {
      this.close();
    }
  }

  close(): void {
    this.dirs?.close();
    this.dirs = undefined;
  }
}

function writeAsync(fd: number, b: Buffer, off: number): Promise<number> {
  return new Promise((res, rej) => fsync.write(fd, b, off, b.length - off, null, (e, n) => (e ? rej(e) : res(n))));
}

/**
 * Unpack layer `tar` into `dir`. Returns the diffID (sha256 of every byte read) and size.
 * Errors: E_LAYER_UNSAFE (hostile entry), E_LAYER_INVALID (malformed), E_LAYER_UNSUPPORTED
 * (sparse and unknown entry types). On error, what was written so far stays inside `dir`.
 */
export async function apply(
  tar: Readable | NodeJS.ReadableStream,
  dir: string,
  opts: ApplyOptions,
): Promise<{ diffId: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  const reader = new ByteReader(tar as AsyncIterable<Buffer>, (b) => {
    h.update(b);
    size += b.length;
  });
  const root = opts.pinned ? dir : await fs.realpath(dir);
  const a = new Applier(root, opts);
  try {
    let n = 0;
    for await (const e of readTar(reader, opts)) {
      await a.entry(e.header, e.body);
      if (++n % BATCH === 0) await new Promise<void>((res) => setImmediate(res));
    }
    await reader.drain();
    await a.finish();
  } finally {
    a.close();
  }
  return { diffId: `sha256:${h.digest('hex')}`, size };
}
