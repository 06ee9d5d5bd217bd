/**
 * The context walk: every entry under a directory with the lstat fields a build uses, into an
 * EntryTable (entry-table.ts: typed arrays, no object per entry). fast-glob added seven bound
 * functions per entry on top of an fs.Stats: a 20,000-file context held 30 MB of them.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fg, { type Entry } from 'fast-glob';
import { VlabError } from '@vlab/errors';
import { changedError, hostPath, nameFromBytes, nativeHelper } from '@vlab/overlay';
import { EntryTableBuilder } from './entry-table.ts';

export { EntryStat, type StatLike } from './stat.ts';

/** native/vlab-walk.c, from the sources (src/context/) or from the CLI bundle (dist/). */
function walkHelper(): string | undefined {
  return nativeHelper('vlab-walk', [
    new URL('../../native/bin/vlab-walk', import.meta.url),
    new URL('../native/bin/vlab-walk', import.meta.url),
  ]);
}

/**
 * Every entry under `root` (not `root` itself), symlinks not followed, in no particular order;
 * an entry removed while walked is left out, an unreadable directory is E_CONTEXT. By vlab-walk
 * when it is built (one fstatat per entry, no fs.Stats; a directory that is no longer the one
 * listed, e.g. one on the way swapped for a link to a host directory, is E_CONTEXT_CHANGED), else
 * by walkTreeJs (fast-glob reads directories by path: it has no such check).
 */
export async function walkTree(root: string, signal?: AbortSignal): Promise<EntryTableBuilder> {
  const helper = walkHelper();
  return helper ? walkNative(helper, root, signal) : walkTreeJs(root, signal);
}

/** Bytes of one vlab-walk record after its path: 14 float64. */
const FIXED = 14 * 8;
/** Node's conversion of a timespec to milliseconds (lib/internal/fs/utils.js msFromTimeSpec). */
const ms = (sec: number, nsec: number) => sec * 1e3 + nsec / 1e6;

function walkNative(helper: string, root: string, signal?: AbortSignal): Promise<EntryTableBuilder> {
  return new Promise((resolve, reject) => {
    const child = spawn(helper, [root], { stdio: ['ignore', 'pipe', 'pipe'], signal });
    const out = new EntryTableBuilder();
    let rest: Buffer | undefined;
    let err = '';
    // Records are parsed as they arrive: the output is never held whole (28 MB for 200,000 files).
    child.stdout.on('data', (chunk: Buffer) => {
      const b = rest ? Buffer.concat([rest, chunk]) : chunk;
      let off = 0;
      while (off + 4 <= b.length) {
        const len = b.readUInt32LE(off);
        const end = off + 4 + len + FIXED;
        if (end > b.length) break;
        const rel = nameFromBytes(b, off + 4, off + 4 + len); // a name that is not UTF-8 keeps its bytes
        const at = off + 4 + len;
        const f = (i: number) => b.readDoubleLE(at + i * 8);
        out.addNumbers(
          rel,
          f(0),
          f(1),
          f(2),
          f(3),
          f(4),
          f(5),
          f(6),
          f(7),
          ms(f(8), f(9)),
          ms(f(10), f(11)),
          ms(f(12), f(13)),
        );
        off = end;
      }
      rest = off < b.length ? Buffer.from(b.subarray(off)) : undefined;
    });
    child.stderr.on('data', (d: Buffer) => {
      if (err.length < 4096) err += d.toString();
    });
    child.on('error', (e) =>
      reject(
        signal?.aborted
          ? new VlabError('E_ABORTED', 'build aborted')
          : new VlabError('E_CONTEXT', `cannot walk the build context ${root}: ${e.message}`, { cause: e }),
      ),
    );
    child.on('close', (code) => {
      if (code === 0 && !rest) resolve(out);
      else if (signal?.aborted) reject(new VlabError('E_ABORTED', 'build aborted'));
      else if (code === 3)
        reject(
          changedError(err.trim().replace(/^vlab-walk: | changed while it was walked$/g, ''), 'E_CONTEXT_CHANGED'),
        );
      else
        reject(
          new VlabError(
            'E_CONTEXT',
            `cannot read the build context ${root}: ${err.trim().replace(/^vlab-walk: /, '') || `walk exited ${code}`}`,
          ),
        );
    });
  });
}

type Done<T> = (e: NodeJS.ErrnoException | null, v: T) => void;
/** Dirents' names (or plain names) of readdir with 'buffer' encoding, as names (fsname.ts). */
const named = (list: (Buffer | fs.Dirent<Buffer>)[]) =>
  list.map((d) => (Buffer.isBuffer(d) ? nameFromBytes(d) : Object.assign(d, { name: nameFromBytes(d.name) })));
/**
 * fast-glob's file system: names read as bytes and paths handed back as bytes, so a name that is
 * not UTF-8 is walked as itself (plain fs decodes it to U+FFFD, and its lstat fails).
 */
const bytesFs = {
  lstat: (p: string, cb: Done<fs.Stats>) => fs.lstat(hostPath(p), cb),
  stat: (p: string, cb: Done<fs.Stats>) => fs.stat(hostPath(p), cb),
  lstatSync: (p: string) => fs.lstatSync(hostPath(p)),
  statSync: (p: string) => fs.statSync(hostPath(p)),
  readdir: (p: string, o: { withFileTypes?: boolean } | Done<unknown>, cb?: Done<unknown>) => {
    const done = (typeof o === 'function' ? o : cb)!;
    if (typeof o === 'object' && o.withFileTypes)
      fs.readdir(hostPath(p), { withFileTypes: true, encoding: 'buffer' }, (e, l) => done(e, e ? [] : named(l)));
    else fs.readdir(hostPath(p), 'buffer', (e, l) => done(e, e ? [] : named(l)));
  },
  readdirSync: (p: string, o: { withFileTypes?: boolean } = {}) =>
    named(
      o.withFileTypes
        ? fs.readdirSync(hostPath(p), { withFileTypes: true, encoding: 'buffer' })
        : fs.readdirSync(hostPath(p), 'buffer'),
    ),
};

/**
 * walkTree without the helper: fast-glob's stream (lstat per entry, symlinks not followed; an entry
 * removed while walked is left out, as fast-glob drops ENOENT), each entry's numbers copied into
 * the table at once so that none of fast-glob's per-entry objects is kept.
 */
export async function walkTreeJs(root: string, signal?: AbortSignal): Promise<EntryTableBuilder> {
  const out = new EntryTableBuilder();
  try {
    // fast-glob drops ENOENT, also the root's: a missing context must still be an error
    if (!fs.statSync(root).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VlabError('E_CONTEXT', `cannot read ${root} as the build context (${code ?? (e as Error).message})`, {
      cause: e,
    });
  }
  const entries = fg.stream('**', {
    cwd: root,
    dot: true,
    onlyFiles: false,
    followSymbolicLinks: false,
    stats: true,
    objectMode: true,
    unique: false,
    fs: bytesFs as never, // Dirents of Buffer names renamed: the shape fast-glob reads, not its declared type
  }) as AsyncIterable<Entry>;
  try {
    for await (const e of entries) {
      if (signal?.aborted) throw new VlabError('E_ABORTED', 'build aborted');
      out.add(e.path, e.stats!);
    }
  } catch (e) {
    if (e instanceof VlabError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new VlabError('E_CONTEXT', `cannot read ${root} in the build context (${code ?? (e as Error).message})`, {
      cause: e,
    });
  }
  return out;
}
