/**
 * The only module that mounts. Mounts arrive as data (`{ type, source, options }`).
 *
 * Deep overlay stacks: mount(2) takes at most one page of option data, so when `lowerdir=` is too
 * long we run `mount` with its working directory at the lowerdirs' common parent and pass them as
 * short relative paths (what Docker's overlay2 does with its `l/` links). With our short snapshot
 * ids that is ~6 bytes a layer: 500 layers (overlay's own limit) fit.
 */
import { promises as fs, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import * as path from 'node:path';
import { VlabError } from '@vlab/errors';
import type { Mount, Snapshotter } from './types.ts';
import { isRealRoot, run, sysHelper, sysOp } from './sys.ts';
import { overlayBaseOptions } from './overlay-driver.ts';

const PAGE = 4096;

/** The deepest dir that holds every one of `dirs` (absolute paths): a common prefix cut at a '/'. */
function commonParent(dirs: string[]): string {
  let prefix = path.dirname(dirs[0]) + '/';
  for (const d of dirs) {
    let i = 0;
    const n = Math.min(prefix.length, d.length);
    while (i < n && prefix.charCodeAt(i) === d.charCodeAt(i)) i++;
    if (i < prefix.length)
      prefix = prefix.slice(0, prefix.lastIndexOf('/', i === d.length && prefix[i] === '/' ? i : i - 1) + 1);
  }
  return prefix.length > 1 ? prefix.slice(0, -1) : '/';
}

/** Options as passed to mount(8), and the cwd to run it in (relative lowerdirs). */
export function overlayMountArgs(m: Mount): { options: string; cwd?: string } {
  let options = m.options.join(',');
  if (options.length < PAGE - 1) return { options };
  const lower = m.options.find((o) => o.startsWith('lowerdir='));
  if (!lower) return { options };
  const dirs = lower.slice('lowerdir='.length).split(':');
  const cwd = commonParent(dirs);
  // under their common parent by construction: a slice (path.relative resolves both sides, which
  // at depth 100 was a third of a millisecond a step)
  const prefix = cwd === '/' ? '/' : cwd + '/';
  const rel = dirs.map((d) => (d.startsWith(prefix) ? d.slice(prefix.length) : path.relative(cwd, d)));
  options = m.options.map((o) => (o === lower ? `lowerdir=${rel.join(':')}` : o)).join(',');
  if (options.length >= PAGE - 1) {
    throw new VlabError(
      'E_MOUNT',
      `overlay mount options are ${options.length} bytes even with relative lowerdirs (limit ${PAGE - 1})`,
      { details: { layers: dirs.length } },
    );
  }
  return { options, cwd };
}

/**
 * Mount `mounts` in order onto `target` (created if missing). Throws E_MOUNT. Through the
 * vlab-sys helper's server when it is built (one syscall per call), else util-linux mount(8).
 */
export async function mountAll(mounts: Mount[], target: string): Promise<void> {
  mkdirSync(target, { recursive: true }); // µs (and mostly made already): no thread-pool trip
  const helper = sysHelper();
  for (const m of mounts) {
    let r;
    if (m.type === 'bind') {
      r = await bind(helper, m.source, target, m.options.includes('rbind'), m.options.includes('ro'));
    } else {
      const { options, cwd } = overlayMountArgs(m);
      r = helper
        ? await sysOp(helper, ['mount', m.type, m.source, target, options], cwd)
        : await run('mount', ['-t', m.type, m.source, '-o', options, target], { cwd });
    }
    if (r.code !== 0) {
      throw new VlabError('E_MOUNT', `mounting ${m.type} on ${target} failed: ${r.stderr.trim()}`, {
        details: { mount: m, target },
      });
    }
  }
}

async function bind(helper: string | undefined, source: string, target: string, rec: boolean, ro: boolean) {
  if (helper) return sysOp(helper, ['bind', source, target, ...(rec ? ['rec'] : []), ...(ro ? ['ro'] : [])]);
  // a /proc/PID/fd/N source (mountPinned) reaches mount(2) as it is: canonicalized, it would be a name again
  const raw = source.startsWith('/proc/') ? ['--no-canonicalize'] : [];
  const r = await run('mount', [...raw, rec ? '--rbind' : '--bind', source, target]);
  return r.code === 0 && ro ? run('mount', [...raw, '-o', 'remount,bind,ro', target]) : r;
}

/**
 * Bind-mounts, read-only, what `fd` (an fd of this process: open-same.ts pinInRoot's) names onto
 * `target`, made here (a directory, or an empty file for a file): through the fd's /proc link, so
 * the mount shows that very file, wherever its old path leads now. Another mount namespace (a
 * container's) cannot bind the fd itself (EINVAL), but can bind `target`. Undo with
 * unmountAll(target). Throws E_MOUNT (nothing left mounted).
 */
export async function mountPinned(fd: number, isDir: boolean, target: string): Promise<void> {
  if (isDir) await fs.mkdir(target);
  else await fs.writeFile(target, '', { flag: 'wx', mode: 0o600 });
  const r = await bind(sysHelper(), `/proc/${process.pid}/fd/${fd}`, target, false, true);
  if (r.code !== 0) {
    await unmountAll(target).catch(() => undefined);
    throw new VlabError('E_MOUNT', `bind-mounting a pinned source on ${target} failed: ${r.stderr.trim()}`, {
      details: { target },
    });
  }
}

/**
 * Mounts for a throwaway upper dir (a build step's, the driver probe's): overlays get `volatile`
 * (Linux 5.10+), so unmounting does not sync the whole upper filesystem — overlayfs otherwise
 * flushes everything anyone left dirty on it (after a big copy: ~0.3 s per unmount here). Such an
 * upper must not be mounted again (the kernel refuses it); a commit that keeps it syncs it itself
 * (the snapshotter's commit, once, where the name appears). Where `volatile`
 * is refused, a plain mount (and no second try in this process).
 */
export async function mountScratch(mounts: Mount[], target: string): Promise<void> {
  if (volatileOk !== false && mounts.some((m) => m.type === 'overlay')) {
    try {
      return await mountAll(
        mounts.map((m) => (m.type === 'overlay' ? { ...m, options: [...m.options, 'volatile'] } : m)),
        target,
      );
    } catch {
      volatileOk = false;
      await unmountAll(target).catch(() => undefined);
    }
  }
  await mountAll(mounts, target);
}
let volatileOk: boolean | undefined;

/**
 * A writable view of directory `source` whose writes are thrown away: `source` is bind-mounted
 * read-only on `<dir>/lower` (its path never goes into overlay's option string, where `:` and `,`
 * separate), and an overlay with its upper and work dirs in `dir` is mounted on `<dir>/merged`,
 * which is returned. `source` is never written. `dir` must be an empty directory on a filesystem
 * that can hold an overlay upper; undo with `unmountThrowaway(dir)`. Throws E_MOUNT (nothing left
 * mounted).
 */
export async function mountThrowaway(source: string, dir: string): Promise<string> {
  const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((n) => path.join(dir, n));
  for (const d of [upper, work]) await fs.mkdir(d, { mode: 0o755 });
  try {
    await mountAll([{ type: 'bind', source, options: ['ro'] }], lower);
    await mountScratch(
      [
        {
          type: 'overlay',
          source: 'overlay',
          options: [...overlayBaseOptions(!isRealRoot()), `lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${work}`],
        },
      ],
      merged,
    );
  } catch (e) {
    await unmountThrowaway(dir).catch(() => undefined);
    throw e;
  }
  return merged;
}

/** Undo `mountThrowaway(…, dir)` (idempotent); the caller removes `dir`. */
export async function unmountThrowaway(dir: string): Promise<void> {
  await unmountAll(path.join(dir, 'merged'));
  await unmountAll(path.join(dir, 'lower'));
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Whether `target` is a mount point (per /proc/self/mountinfo). */
function realpathOr(target: string): string {
  try {
    return realpathSync(target);
  } catch {
    return path.resolve(target);
  }
}

export function isMounted(target: string): boolean {
  const t = path.resolve(target);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => unescapeMountinfo(l.split(' ')[4] ?? '') === t);
}

/** Mount points at `dir` or below it (per /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  const d = path.resolve(dir);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => unescapeMountinfo(l.split(' ')[4] ?? ''))
    .filter((m) => m === d || m.startsWith(`${d}/`));
}

/** Unmount everything stacked on `target`. Idempotent: a target that is not mounted is fine. */
export async function unmountAll(target: string): Promise<void> {
  const t = realpathOr(target);
  const helper = sysHelper();
  if (helper) {
    // umount2 says EINVAL once nothing is mounted there (EPERM first for a user who cannot
    // unmount anything): mountinfo is read only when it fails, or after a success (µs, where
    // another round trip to the helper to hear EINVAL cost more on every step).
    const notMounted = (err: string) => /Invalid argument|No such file or directory/.test(err) || !isMounted(t);
    for (let i = 0; i < 64; i++) {
      const r = await sysOp(helper, ['umount', t]);
      if (r.code === 0) {
        if (!isMounted(t)) return;
        continue;
      }
      if (notMounted(r.stderr)) return;
      const lazy = await sysOp(helper, ['umount', t, 'lazy']);
      if (lazy.code !== 0 && !notMounted(lazy.stderr))
        throw new VlabError('E_MOUNT', `unmounting ${t} failed: ${r.stderr.trim()}`, { details: { target: t } });
    }
    return;
  }
  for (let i = 0; i < 64 && isMounted(t); i++) {
    const r = await run('umount', [t]);
    if (r.code !== 0) {
      const lazy = await run('umount', ['-l', t]);
      if (lazy.code !== 0)
        throw new VlabError('E_MOUNT', `unmounting ${t} failed: ${r.stderr.trim()}`, { details: { target: t } });
    }
  }
}

/** Mount snapshot `key` of `s` on `target` (its mounts, as data, through mountAll). */
export async function mountSnapshot(s: Snapshotter, key: string, target: string): Promise<void> {
  await mountAll(await s.mounts(key), target);
}
