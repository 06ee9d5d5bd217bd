/**
 * The context walk: every entry under a directory with the lstat fields a build uses, into an
 * EntryTable (entry-table.ts: typed arrays, no object per entry). fast-glob added seven bound
 * functions per entry on top of an fs.Stats: a 20,000-file context held 30 MB of them; and it
 * reads directories by path, which a directory swapped for a link to a host one redirects.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { VlabError } from '@vlab/errors';
import { atFd, changedError, hostPath, nameFromBytes, nativeHelper, openDirAt } from '@vlab/overlay';
import { EntryTableBuilder } from './entry-table.ts';

const { O_RDONLY, O_DIRECTORY } = fs.constants;

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
 * by walkTreeJs (the same check, through /proc/self/fd).
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

/** A directory listed by its parent, to be opened (and checked) from the parent's fd. */
interface Sub {
  name: string;
  rel: string;
  dev: number;
  ino: number;
}

/** A directory being walked: its fd and the subdirectories it listed, not yet visited. */
interface Level {
  fd: number;
  subs: Sub[];
}

/** How long the JS walk runs before it lets the event loop (Ctrl-C, timers) run. */
const SLICE_MS = 20;

/**
 * walkTree without the helper, with vlab-walk's guarantee: each directory is opened from its
 * parent's fd (openDirAt: /proc/self/fd/N/NAME, which resolves NAME in the directory fd N holds,
 * whatever its path names now; O_NOFOLLOW|O_DIRECTORY on NAME, the only component not reached
 * through an fd), and listed only if its fstat is the dev/ino its parent's lstat saw; else
 * E_CONTEXT_CHANGED. Entries are lstat'ed and listed through their directory's fd, never by path.
 * One fd per level is open. Names are read as bytes (a name that is not UTF-8 is walked as itself).
 */
export async function walkTreeJs(root: string, signal?: AbortSignal): Promise<EntryTableBuilder> {
  const out = new EntryTableBuilder();
  let rootFd: number;
  try {
    rootFd = fs.openSync(hostPath(root), O_RDONLY | O_DIRECTORY); // the root is followed: the user named it
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VlabError('E_CONTEXT', `cannot read ${root} as the build context (${code ?? (e as Error).message})`, {
      cause: e,
    });
  }
  const stack: Level[] = [];
  /** Lists the directory open as `fd` (at `rel`) into `out`; its subdirectories become a level. */
  const list = (fd: number, rel: string) => {
    const subs: Sub[] = [];
    for (const b of fs.readdirSync(atFd(fd, ''), 'buffer')) {
      const name = nameFromBytes(b);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(hostPath(atFd(fd, name)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed while walked: left out
        throw e;
      }
      const sub = rel ? `${rel}/${name}` : name;
      out.add(sub, st);
      if (st.isDirectory()) subs.push({ name, rel: sub, dev: st.dev, ino: st.ino });
    }
    stack.push({ fd, subs: subs.reverse() }); // popped from the end: visited in listing order
  };
  try {
    list(rootFd, '');
    let slice = Date.now();
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const sub = top.subs.pop();
      if (!sub) {
        fs.closeSync(stack.pop()!.fd);
        continue;
      }
      if (Date.now() - slice > SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        slice = Date.now();
      }
      if (signal?.aborted) throw new VlabError('E_ABORTED', 'build aborted');
      let fd: number;
      try {
        fd = openDirAt(top.fd, sub.name);
      } catch (e) {
        // gone, or no longer a directory (a link swapped in is ELOOP): nothing of it is listed, as vlab-walk
        if (['ENOENT', 'ENOTDIR', 'ELOOP'].includes((e as NodeJS.ErrnoException).code!)) continue;
        throw e;
      }
      const st = fs.fstatSync(fd);
      if (st.dev !== sub.dev || st.ino !== sub.ino) {
        fs.closeSync(fd);
        throw changedError(sub.rel, 'E_CONTEXT_CHANGED');
      }
      list(fd, sub.rel);
    }
  } catch (e) {
    if (e instanceof VlabError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new VlabError('E_CONTEXT', `cannot read ${root} in the build context (${code ?? (e as Error).message})`, {
      cause: e,
    });
  } finally {
    for (const level of stack) fs.closeSync(level.fd);
  }
  return out;
}
