/**
 * The layers a UnionView reads: a directory (overlay or OCI whiteouts), or a layer tar indexed once
 * in memory (headers and data offsets only; content read on demand): an uncompressed tar file, or
 * a stream source (a compressed blob, decompressed by the caller) read again from its start.
 */
import { promises as fs, constants, createReadStream, lstatSync, statSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { VlabError } from '@vlab/errors';
import { readXattrs, readXattrsTree } from './sys.ts';
import { bareEntry, ByteReader, readTar, type TarEntry } from './layer/tar-format.ts';
import { cleanPath } from './layer/apply.ts';
import { fileChunks } from './same-content.ts';

/** What UnionView.stat returns: the fields of fs.Stats it can know for both kinds of layer. */
export interface UnionStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  rdev: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isFIFO(): boolean;
}

export interface Layer {
  lstat(rel: string): Promise<UnionStat | undefined>;
  readdir(rel: string): Promise<string[]>;
  readlink(rel: string): Promise<string>;
  readFile(rel: string): Promise<Buffer>;
  /** A regular file's content in chunks. */
  stream(rel: string): AsyncIterable<Buffer>;
  /** Names the bytes of the file at `rel`: equal names, equal bytes (undefined: no such name). */
  origin(rel: string): Promise<string | undefined>;
  opaque(rel: string): Promise<boolean>;
}

/**
 * Opaque answers for immutable layers (committed snapshots), kept for the process: a diff asks
 * every lower layer about the dirs the step copied up, so without this each step's cost would
 * grow with the depth of the stack. Keyed by the layer dir's inode and ctime as well as its
 * path, so a store removed and made again at the same path is not answered from the old one.
 */
const opaqueCache = new Map<string, Promise<boolean>>();
const OPAQUE_CACHE_MAX = 1 << 16;

/**
 * lstat answers for immutable layers, kept for the process under the same keys, for the same
 * reason: the dirs a step's mountpoints copy up (/, /etc, /proc…) are left out of its layer, so
 * they exist only in the base and each is looked up through every lower (a whiteout, then the
 * name: two lstats a layer, a thousand a step at depth 100). Kept small (the fields a UnionStat
 * has, or null for none): an fs.Stats is about 1.5 KB.
 */
const lstatCache = new Map<string, UnionStat | null>();
const LSTAT_CACHE_MAX = 1 << 15;

/**
 * An immutable layer dir's key prefix in the process-wide caches: its path with its inode and
 * ctime, or with the identity of the store it is in (LayerOptions.identity).
 */
const cacheKeyOf = (st: Stats, root: string) => `${st.ino}:${st.ctimeMs}:${root}\0`;
const storeKeyOf = (identity: string, root: string) => `store ${identity}:${root}\0`;

/** A UnionStat from lstat's fields (the type from the mode's S_IFMT bits). */
class CompactStat implements UnionStat {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly rdev: number;
  constructor(st: Stats) {
    ({ mode: this.mode, uid: this.uid, gid: this.gid, size: this.size, mtimeMs: this.mtimeMs, rdev: this.rdev } = st);
  }
  private is(type: number): boolean {
    return (this.mode & constants.S_IFMT) === type;
  }
  isFile = () => this.is(constants.S_IFREG);
  isDirectory = () => this.is(constants.S_IFDIR);
  isSymbolicLink = () => this.is(constants.S_IFLNK);
  isCharacterDevice = () => this.is(constants.S_IFCHR);
  isBlockDevice = () => this.is(constants.S_IFBLK);
  isFIFO = () => this.is(constants.S_IFIFO);
}
const OPAQUE_MATCH = '^(trusted|user)\\.overlay\\.opaque$';

export class DirLayer implements Layer {
  private opq?: Set<string>;
  private id?: string;
  /** `immutable`: the dir never changes while we read it (a committed snapshot's). */
  constructor(
    readonly root: string,
    private readonly immutable = false,
    /** Its key in the caches when the caller has it (openLayer): no stat of the root here. */
    cacheKey?: string,
  ) {
    if (immutable) this.id = cacheKey;
  }
  private abs(rel: string) {
    return rel ? path.join(this.root, rel) : this.root;
  }
  /** An immutable layer's key in the process-wide caches: its dir's path, inode and ctime. */
  private cacheId(): string {
    if (this.id === undefined) {
      this.id = cacheKeyOf(lstatSync(this.root), this.root);
    }
    return this.id;
  }
  async lstat(rel: string): Promise<UnionStat | undefined> {
    if (!this.immutable) return this.lstatNow(rel);
    const key = this.cacheId() + rel;
    const hit = lstatCache.get(key);
    if (hit !== undefined) return hit ?? undefined;
    const st = this.lstatNow(rel);
    if (lstatCache.size >= LSTAT_CACHE_MAX) lstatCache.clear();
    lstatCache.set(key, st ? new CompactStat(st) : null);
    return st;
  }
  // Synchronous: one metadata call is cheaper than a thread-pool round trip, and a union lookup
  // makes a few per layer.
  private lstatNow(rel: string): Stats | undefined {
    try {
      return lstatSync(this.abs(rel), { throwIfNoEntry: false });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw e;
    }
  }
  readdir(rel: string) {
    return fs.readdir(this.abs(rel));
  }
  readlink(rel: string) {
    return fs.readlink(this.abs(rel));
  }
  readFile(rel: string) {
    return fs.readFile(this.abs(rel));
  }
  stream(rel: string) {
    return fileChunks(this.abs(rel));
  }
  async origin(): Promise<undefined> {
    return undefined; // a dir's files may be rewritten in place
  }
  /**
   * Overlay's opaque xattr (trusted. or user.). Immutable layer: that one dir's xattrs, cached;
   * otherwise read for the whole layer in one go, once per instance.
   */
  async opaque(rel: string): Promise<boolean> {
    if (this.immutable) {
      const key = this.cacheId() + rel;
      let hit = opaqueCache.get(key);
      if (!hit) {
        if (opaqueCache.size >= OPAQUE_CACHE_MAX) opaqueCache.clear();
        hit = readXattrs(this.abs(rel), OPAQUE_MATCH).then((m) => [...m.values()].some((v) => v.toString() === 'y'));
        hit.catch(() => opaqueCache.delete(key));
        opaqueCache.set(key, hit);
      }
      return hit;
    }
    if (!this.opq) {
      this.opq = new Set();
      const x = await readXattrsTree(this.root, OPAQUE_MATCH);
      for (const [p, m] of x)
        for (const v of m.values()) if (v.toString() === 'y') this.opq.add(path.relative(this.root, p));
    }
    return this.opq.has(rel);
  }
}

type Indexed = TarEntry & { offset: number };

/**
 * A layer tar with no file to seek in (a gzip blob): `open()` gives a fresh stream of the
 * uncompressed tar each time; a read streams through it to the entry's offset, nothing is kept.
 */
export interface TarSource {
  open(): NodeJS.ReadableStream;
  /** Names the tar (a blob digest): two sources with the same id give the same bytes. */
  id?: string;
}

export interface TarLayerLimits {
  /** Most entries one layer tar may have (its index is in memory). Default 2 Mi. */
  maxEntries?: number;
}

const DEFAULT_MAX_ENTRIES = 2 ** 21;

function close(s: NodeJS.ReadableStream): void {
  (s as { destroy?: () => void }).destroy?.();
}

function statOf(h: TarEntry): UnionStat {
  const fmt = {
    file: 0o100000,
    dir: 0o040000,
    symlink: 0o120000,
    char: 0o020000,
    block: 0o060000,
    fifo: 0o010000,
    link: 0o100000,
  }[h.type];
  return {
    mode: fmt | h.mode,
    uid: h.uid,
    gid: h.gid,
    size: h.size,
    mtimeMs: h.mtime * 1000,
    rdev: h.devmajor * 256 + h.devminor,
    isFile: () => h.type === 'file' || h.type === 'link',
    isDirectory: () => h.type === 'dir',
    isSymbolicLink: () => h.type === 'symlink',
    isCharacterDevice: () => h.type === 'char',
    isBlockDevice: () => h.type === 'block',
    isFIFO: () => h.type === 'fifo',
  };
}

export class TarLayer implements Layer {
  private index?: Promise<{ entries: Map<string, Indexed>; children: Map<string, Set<string>> }>;
  constructor(
    readonly file: string | TarSource,
    private readonly limits: TarLayerLimits = {},
  ) {}

  private open(): NodeJS.ReadableStream {
    return typeof this.file === 'string' ? createReadStream(this.file) : this.file.open();
  }

  private load() {
    this.index ??= (async () => {
      const entries = new Map<string, Indexed>();
      const children = new Map<string, Set<string>>([['', new Set()]]);
      const addDir = (rel: string) => {
        if (!children.has(rel)) children.set(rel, new Set());
        if (!entries.has(rel) && rel) entries.set(rel, { ...bareEntry(rel, 'dir', 0o755), offset: 0 });
      };
      const max = this.limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
      const src = this.open();
      const r = new ByteReader(src as AsyncIterable<Buffer>, () => {});
      try {
        for await (const e of readTar(r)) {
          if (entries.size >= max)
            throw new VlabError('E_LAYER_UNSAFE', `a layer tar has more than ${max} entries: it is not read`, {
              details: { limit: max },
            });
          const parts = cleanPath(e.header.name);
          if (!parts.length) continue;
          for (let i = 1; i < parts.length; i++) {
            const d = parts.slice(0, i).join('/');
            addDir(d);
            children.get(parts.slice(0, i - 1).join('/'))!.add(parts[i - 1]);
          }
          const rel = parts.join('/');
          children.get(parts.slice(0, -1).join('/'))!.add(parts[parts.length - 1]);
          entries.set(rel, { ...e.header, offset: r.position });
          if (e.header.type === 'dir') addDir(rel);
        }
      } finally {
        close(src);
      }
      return { entries, children };
    })();
    return this.index;
  }

  /** The entry at `rel`, with hard links (type 1) followed to the entry they name. */
  private async entry(rel: string): Promise<Indexed | undefined> {
    const { entries } = await this.load();
    let e = entries.get(rel);
    for (let i = 0; e && e.type === 'link' && i < 8; i++) e = entries.get(cleanPath(e.linkname).join('/'));
    return e && e.type !== 'link' ? e : undefined;
  }

  async lstat(rel: string): Promise<UnionStat | undefined> {
    if (!rel) return statOf(bareEntry('', 'dir', 0o755));
    const e = await this.entry(rel);
    return e ? statOf(e) : undefined;
  }
  async readdir(rel: string) {
    return [...((await this.load()).children.get(rel) ?? [])];
  }
  async readlink(rel: string) {
    return (await this.entry(rel))!.linkname;
  }
  async readFile(rel: string): Promise<Buffer> {
    const e = (await this.entry(rel))!;
    if (typeof this.file !== 'string') {
      const src = this.file.open();
      try {
        const r = new ByteReader(src as AsyncIterable<Buffer>, () => {});
        await r.skip(e.offset);
        const parts: Buffer[] = [];
        for await (const c of r.stream(e.size)) parts.push(c);
        return Buffer.concat(parts);
      } finally {
        close(src);
      }
    }
    const fh = await fs.open(this.file, 'r');
    try {
      const b = Buffer.alloc(e.size);
      let n = 0;
      while (n < e.size) {
        const { bytesRead } = await fh.read(b, n, e.size - n, e.offset + n);
        if (!bytesRead) break;
        n += bytesRead;
      }
      return b;
    } finally {
      await fh.close();
    }
  }
  async *stream(rel: string): AsyncIterable<Buffer> {
    const e = (await this.entry(rel))!;
    if (!e.size) return;
    if (typeof this.file === 'string') {
      yield* createReadStream(this.file, { start: e.offset, end: e.offset + e.size - 1, highWaterMark: 1 << 16 });
      return;
    }
    const src = this.file.open();
    try {
      const r = new ByteReader(src as AsyncIterable<Buffer>, () => {});
      await r.skip(e.offset);
      yield* r.stream(e.size);
    } finally {
      close(src);
    }
  }
  async origin(rel: string) {
    const id = typeof this.file === 'string' ? this.file : this.file.id;
    const e = await this.entry(rel);
    return id !== undefined && e ? `${id}\0${e.offset}` : undefined;
  }
  async opaque(rel: string) {
    return (await this.load()).entries.has(rel ? `${rel}/.wh..wh..opq` : '.wh..wh..opq');
  }
}

/**
 * A layer path (a directory, or a file taken as an uncompressed layer tar) or a tar stream source.
 * `immutable`: a directory does not change while it is read (committed snapshots).
 */
export interface LayerOptions extends TarLayerLimits {
  /** The layer dirs do not change while they are read (committed snapshots): answers are kept. */
  immutable?: boolean;
  /**
   * With `immutable`: the layers are dirs whose paths, under this name (a store's dirIdentity),
   * name their content for good, so none is stat'ed for its cache key: a diff opens every lower
   * on every step, a stat each was half a millisecond a step at depth 100.
   */
  identity?: string;
}

export async function openLayer(p: string | TarSource, opts: LayerOptions = {}): Promise<Layer> {
  if (typeof p !== 'string') return new TarLayer(p, opts);
  if (opts.immutable && opts.identity) return new DirLayer(p, true, storeKeyOf(opts.identity, p));
  // immutable (a diff's lowers, every one on every step): synchronous, µs, no thread-pool trip
  const st = opts.immutable ? statSync(p) : await fs.stat(p);
  return st.isDirectory() ? new DirLayer(p, opts.immutable ?? false, cacheKeyOf(st, p)) : new TarLayer(p, opts);
}
