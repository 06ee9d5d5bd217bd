/**
 * Read a stack of layers as overlayfs would show them, without mounting (non-root inspection,
 * tests). A layer is a directory — holding overlay whiteouts (char 0/0, opaque xattr) or OCI ones
 * (`.wh.<name>`, `.wh..wh..opq`), both honoured — or an uncompressed layer tar file. Symlinks in
 * the middle of a path are followed inside the union (absolute targets from the union's root);
 * `readFile` follows a final symlink too; `stat` does not (it is an lstat).
 */
import * as path from 'node:path';
import { VlabError } from '@vlab/errors';
import { openLayer, type Layer, type LayerOptions, type TarSource, type UnionStat } from './union-layers.ts';

export type { UnionStat, TarSource, TarLayerLimits } from './union-layers.ts';

const WH = '.wh.';
const OPQ = '.wh..wh..opq';

function fsError(code: 'ENOENT' | 'ENOTDIR', p: string): never {
  const e = new Error(
    `${code}: ${code === 'ENOENT' ? 'no such file or directory' : 'not a directory'} in union, '${p}'`,
  ) as NodeJS.ErrnoException;
  e.code = code;
  throw e;
}

const isWhiteoutNode = (st: UnionStat) => st.isCharacterDevice() && st.rdev === 0;

interface Resolved {
  rel: string;
  layer: number;
  st: UnionStat;
  dirs: number[]; /* layers merged when a dir, top first */
}

export class UnionView {
  private readonly paths: (string | TarSource)[]; // topmost first
  private opened?: Promise<Layer[]>;
  /**
   * `layers`, lowest first: directories, uncompressed tar files, or tar stream sources (compressed
   * blobs). `immutable`: the layer dirs do not change while this view lives (committed snapshots);
   * `identity`: see LayerOptions.
   */
  constructor(
    layers: (string | TarSource)[],
    private readonly opts: LayerOptions = {},
  ) {
    this.paths = [...layers].reverse().map((l) => (typeof l === 'string' ? path.resolve(l) : l));
  }

  private layers(): Promise<Layer[]> {
    this.opened ??= Promise.all(this.paths.map((p) => openLayer(p, this.opts)));
    return this.opened;
  }

  private async resolve(rel: string, followLast: boolean, hops = 0): Promise<Resolved | undefined> {
    const L = await this.layers();
    const parts = rel.split('/').filter((c) => c && c !== '.');
    if (parts.includes('..')) throw new VlabError('E_PATH', `'..' not allowed in union paths: ${rel}`);
    if (!L.length) return undefined; // no layers (FROM scratch): nothing is there, not even a root to stat
    let cur: Resolved = { rel: '', layer: 0, st: (await L[0].lstat(''))!, dirs: L.map((_, i) => i) };
    for (let k = 0; k < parts.length; k++) {
      const name = parts[k];
      const parentRel = cur.rel;
      const r = parentRel ? `${parentRel}/${name}` : name;
      const last = k === parts.length - 1;
      const dirs: number[] = [];
      let found: Resolved | undefined;
      for (const i of cur.dirs) {
        if (await L[i].lstat(parentRel ? `${parentRel}/${WH}${name}` : WH + name)) break;
        const st = await L[i].lstat(r);
        if (!st) continue;
        if (isWhiteoutNode(st)) break;
        if (st.isDirectory()) {
          dirs.push(i);
          found ??= { rel: r, layer: i, st, dirs };
          if ((await L[i].lstat(`${r}/${OPQ}`)) || (await L[i].opaque(r))) break;
          continue;
        }
        found ??= { rel: r, layer: i, st, dirs: [] };
        break; // a non-directory hides everything below it
      }
      if (!found) return undefined;
      if (found.st.isSymbolicLink() && (!last || followLast)) {
        if (hops > 40) throw new VlabError('E_PATH', `too many symlinks resolving ${rel}`);
        const target = await L[found.layer].readlink(r);
        const out = target.startsWith('/') ? [] : parentRel.split('/').filter(Boolean);
        for (const c of target.split('/')) {
          if (!c || c === '.') continue;
          if (c === '..') out.pop();
          else out.push(c);
        }
        return this.resolve([...out, ...parts.slice(k + 1)].join('/'), followLast, hops + 1);
      }
      if (!last && !found.st.isDirectory()) return undefined;
      cur = found;
    }
    return cur;
  }

  /** Names in directory `p`, sorted; whiteouts and markers hidden. */
  async readdir(p: string): Promise<string[]> {
    const L = await this.layers();
    if (!L.length && !p.split('/').some((c) => c && c !== '.')) return []; // an empty root
    const r = await this.resolve(p, true);
    if (!r) fsError('ENOENT', p);
    if (!r.st.isDirectory()) fsError('ENOTDIR', p);
    const seen = new Set<string>();
    const hidden = new Set<string>();
    for (const i of r.dirs) {
      const here: string[] = [];
      for (const n of await L[i].readdir(r.rel)) {
        if (n === OPQ) continue;
        if (n.startsWith(WH)) {
          hidden.add(n.slice(WH.length));
          continue;
        }
        const st = await L[i].lstat(r.rel ? `${r.rel}/${n}` : n);
        if (st && isWhiteoutNode(st)) {
          hidden.add(n);
          continue;
        }
        here.push(n);
      }
      for (const n of here) if (!hidden.has(n)) seen.add(n);
      for (const n of here) hidden.add(n); // lower entries of the same name are shadowed anyway
    }
    return [...seen].sort();
  }

  /** lstat of the visible entry (the topmost one). */
  async stat(p: string): Promise<UnionStat> {
    const r = await this.resolve(p, false);
    if (!r) fsError('ENOENT', p);
    return r.st;
  }

  /**
   * Only a regular file is read (a FIFO would block forever, a device never end), and with
   * `maxBytes` only one that small: anything else is E_IMAGE_FILE, before any open.
   */
  async readFile(p: string, opts: { maxBytes?: number } = {}): Promise<Buffer> {
    const r = await this.resolve(p, true);
    if (!r) fsError('ENOENT', p);
    const refuse = (why: string) =>
      new VlabError('E_IMAGE_FILE', `${p} in the image ${why}: it is not read (fix the image's ${p})`, {
        details: { path: p },
      });
    if (!r.st.isFile()) throw refuse('is not a regular file');
    if (opts.maxBytes !== undefined && r.st.size > opts.maxBytes) throw refuse(`is larger than ${opts.maxBytes} bytes`);
    return (await this.layers())[r.layer].readFile(r.rel);
  }

  /** The content of regular file `p` (a final symlink followed), in chunks: never held whole. */
  async stream(p: string): Promise<AsyncIterable<Buffer>> {
    const r = await this.resolve(p, true);
    if (!r) fsError('ENOENT', p);
    if (!r.st.isFile())
      throw new VlabError('E_IMAGE_FILE', `${p} in the image is not a regular file: it is not read`, {
        details: { path: p },
      });
    return (await this.layers())[r.layer].stream(r.rel);
  }

  /**
   * A name for the bytes of file `p` (its layer tar's id and the entry's place in it), the same in
   * any view over that layer; undefined when the layer cannot name it (a directory layer).
   */
  async origin(p: string): Promise<string | undefined> {
    const r = await this.resolve(p, true);
    return r?.st.isFile() ? (await this.layers())[r.layer].origin(r.rel) : undefined;
  }

  async readlink(p: string): Promise<string> {
    const r = await this.resolve(p, false);
    if (!r) fsError('ENOENT', p);
    return (await this.layers())[r.layer].readlink(r.rel);
  }

  async exists(p: string): Promise<boolean> {
    return (await this.resolve(p, false)) !== undefined;
  }
}
