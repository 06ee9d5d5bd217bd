/**
 * `docker diff`: the changes of a writable snapshot as A (added), C (changed) and D (deleted)
 * paths. It reads the layer diff itself (diff.ts), so both have one rule for what changed
 * (whiteouts, opaque dirs, copied-up but unchanged dirs left out); an entry is C when the layers
 * below show that path, else A. File contents pass through the reader once and are dropped.
 */
import { ByteReader, readTar } from './tar-format.ts';
import { diffSource } from './diff.ts';
import { UnionView } from '../union-view.ts';
import type { DiffSourceInfo } from '../types.ts';

export interface Change {
  kind: 'A' | 'C' | 'D';
  /** Absolute path in the container. */
  path: string;
}

export interface ChangesOptions {
  /** Container paths left out, with what is below them (the runtime's own mountpoints; DiffOptions.exclude). */
  ignore?: string[];
}

export async function changes(src: DiffSourceInfo, opts: ChangesOptions = {}): Promise<Change[]> {
  const lowers = src.kind === 'upper' ? [...(src.lowers ?? [])].reverse() : src.base ? [src.base] : [];
  const below = new UnionView(lowers);
  const out = new Map<string, Change['kind']>();
  const r = new ByteReader(diffSource(src, { exclude: opts.ignore }) as AsyncIterable<Buffer>, () => {});
  for await (const e of readTar(r)) {
    for await (const _ of e.body()) void _; // contents are not needed
    const name = e.header.name.replace(/\/$/, '');
    const slash = name.lastIndexOf('/');
    const base = name.slice(slash + 1);
    const dir = slash < 0 ? '' : name.slice(0, slash);
    if (base === '.wh..wh..opq') continue; // the dir itself is listed
    const p = '/' + (base.startsWith('.wh.') ? (dir ? `${dir}/` : '') + base.slice(4) : name);
    if (base.startsWith('.wh.')) out.set(p, 'D');
    else out.set(p, (await below.exists(p)) ? 'C' : 'A');
  }
  return [...out]
    .map(([path, kind]) => ({ kind, path }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
