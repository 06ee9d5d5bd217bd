/**
 * Read a stack of layer directories as overlayfs would show them, without mounting (non-root
 * inspection, tests). Layer dirs may hold overlay whiteouts (char 0/0, opaque xattr) or OCI ones
 * (`.wh.<name>`, `.wh..wh..opq`) — both are honoured. Symlinks in the middle of a path are
 * followed inside the union (absolute targets from the union's root); `readFile` follows a final
 * symlink too, `stat` does not (it is an lstat).
 */
import { promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { VlabError } from '@vlab/errors';
import { readXattrsTree } from './sys.ts';

const WH = '.wh.';
const OPQ = '.wh..wh..opq';

function enoent(p: string): never {
  const e = new Error(`ENOENT: no such file or directory in union, '${p}'`) as NodeJS.ErrnoException;
  e.code = 'ENOENT';
  throw e;
}

async function lstatOrUndef(p: string): Promise<Stats | undefined> {
  try { return await fs.lstat(p); } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ENOENT' || c === 'ENOTDIR') return undefined;
    throw e;
  }
}

const isWhiteoutNode = (st: Stats) => st.isCharacterDevice() && st.rdev === 0;

interface Resolved { layer: number; abs: string; st: Stats; dirs: number[] /* layers merged when a dir */ }

export class UnionView {
  private readonly top: string[]; // topmost first
  private opaque: (Set<string> | undefined)[];
  constructor(layers: string[] /* lowest first */) {
    this.top = [...layers].reverse().map((l) => path.resolve(l));
    this.opaque = this.top.map(() => undefined);
  }

  private async opaqueDirs(i: number): Promise<Set<string>> {
    let s = this.opaque[i];
    if (!s) {
      s = new Set();
      const x = await readXattrsTree(this.top[i], '^(trusted|user)\\.overlay\\.opaque$');
      for (const [p, m] of x) for (const v of m.values()) if (v.toString() === 'y') s.add(p);
      this.opaque[i] = s;
    }
    return s;
  }

  private async isOpaque(i: number, abs: string): Promise<boolean> {
    if (await lstatOrUndef(path.join(abs, OPQ))) return true;
    return (await this.opaqueDirs(i)).has(abs);
  }

  /** Walk `rel` component by component through the stack. */
  private async resolve(rel: string, followLast: boolean, hops = 0): Promise<Resolved | undefined> {
    const parts = rel.split('/').filter((c) => c && c !== '.');
    if (parts.includes('..')) throw new VlabError('E_PATH', `'..' not allowed in union paths: ${rel}`);
    let active = this.top.map((_, i) => i);
    let cur: Resolved = { layer: active[0], abs: this.top[active[0]] ?? '/', st: undefined as unknown as Stats, dirs: active };
    let prefix = '';
    for (let k = 0; k < parts.length; k++) {
      const name = parts[k];
      const last = k === parts.length - 1;
      prefix = prefix ? `${prefix}/${name}` : name;
      const dirs: number[] = [];
      let found: Resolved | undefined;
      for (const i of active) {
        const parent = path.join(this.top[i], path.dirname(prefix));
        if (await lstatOrUndef(path.join(parent, WH + name))) break;
        const abs = path.join(this.top[i], prefix);
        const st = await lstatOrUndef(abs);
        if (!st) continue;
        if (isWhiteoutNode(st)) break;
        if (st.isDirectory()) {
          dirs.push(i);
          if (!found) found = { layer: i, abs, st, dirs };
          if (await this.isOpaque(i, abs)) break;
          continue;
        }
        if (!found) found = { layer: i, abs, st, dirs: [] };
        break; // a non-directory hides everything below it
      }
      if (!found) return undefined;
      if (found.st.isSymbolicLink() && (!last || followLast)) {
        if (hops > 40) throw new VlabError('E_PATH', `too many symlinks resolving ${rel}`);
        const target = await fs.readlink(found.abs);
        const base = target.startsWith('/') ? [] : path.dirname(prefix).split('/').filter((c) => c && c !== '.');
        const out = [...base];
        for (const c of target.split('/')) {
          if (!c || c === '.') continue;
          if (c === '..') out.pop(); else out.push(c);
        }
        return this.resolve([...out, ...parts.slice(k + 1)].join('/'), followLast, hops + 1);
      }
      if (!last && !found.st.isDirectory()) return undefined;
      cur = found;
      active = found.dirs;
    }
    if (!parts.length) {
      const st = await fs.lstat(this.top[0]);
      return { layer: 0, abs: this.top[0], st, dirs: this.top.map((_, i) => i) };
    }
    return cur;
  }

  /** Names in directory `p`, sorted; whiteouts and markers hidden. */
  async readdir(p: string): Promise<string[]> {
    const r = await this.resolve(p, true);
    if (!r) enoent(p);
    if (!r.st.isDirectory()) {
      const e = new Error(`ENOTDIR: not a directory in union, '${p}'`) as NodeJS.ErrnoException;
      e.code = 'ENOTDIR';
      throw e;
    }
    const seen = new Set<string>();
    const hidden = new Set<string>();
    for (const i of r.dirs) {
      const dir = path.join(this.top[i], path.relative(this.top[r.layer], r.abs));
      const ents = await fs.readdir(dir, { withFileTypes: true });
      const here: string[] = [];
      for (const e of ents) {
        if (e.name === OPQ) continue;
        if (e.name.startsWith(WH)) { hidden.add(e.name.slice(WH.length)); continue; }
        if (e.isCharacterDevice() && isWhiteoutNode(await fs.lstat(path.join(dir, e.name)))) { hidden.add(e.name); continue; }
        here.push(e.name);
      }
      for (const n of here) if (!hidden.has(n)) seen.add(n);
      for (const n of here) hidden.add(n); // lower entries of the same name are shadowed anyway
    }
    return [...seen].sort();
  }

  /** lstat of the visible entry (the topmost one). */
  async stat(p: string): Promise<Stats> {
    const r = await this.resolve(p, false);
    if (!r) enoent(p);
    return r.st;
  }

  async readFile(p: string): Promise<Buffer> {
    const r = await this.resolve(p, true);
    if (!r) enoent(p);
    return fs.readFile(r.abs);
  }

  async readlink(p: string): Promise<string> {
    const r = await this.resolve(p, false);
    if (!r) enoent(p);
    return fs.readlink(r.abs);
  }

  async exists(p: string): Promise<boolean> {
    return (await this.resolve(p, false)) !== undefined;
  }
}
