/**
 * Writes into a tree a concurrent writer changes (a running container's rootfs under `vbuild cp`,
 * a stage tree): a directory on the way swapped, again and again, for a symlink to a host
 * directory. The write lands in the tree or fails (E_LAYER_UNSAFE, E_CP_DEST, ...); the host
 * directory never gets an entry, and its mode and owner never change. Real kernel, bounded in time.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVlabError } from '@vlab/errors';
import { copyToContainer } from './cp.ts';
import { mkdirInRoot } from './in-root.ts';
import { createMountpoints, removeMountpoints } from '../exec/mountpoints.ts';
import { writeCopyInto } from '../solve/copy/write.ts';
import type { CopyPlan, PlanEntry } from '../solve/copy/plan.ts';

/** Swaps ROOT/NAME with a link to HOST (NAME.away meanwhile), ~0.2 ms each, until killed. */
const DIR_SWAPPER = `
const fs = require('node:fs');
const [root, name, host] = process.argv.slice(1);
process.chdir(root);
const pause = new Int32Array(new SharedArrayBuffer(4));
for (;;) {
  try { fs.renameSync(name, name + '.away'); fs.symlinkSync(host, name); } catch {}
  Atomics.wait(pause, 0, 0, 0.2);
  try { fs.unlinkSync(name); fs.renameSync(name + '.away', name); } catch {}
  Atomics.wait(pause, 0, 0, 0.2);
}`;

/** Errors a write may end with while the swapper runs (the tree changed under it). */
const RACE_CODES = [
  'E_LAYER_UNSAFE',
  'E_ADD_EXTRACT',
  'E_CP_DEST',
  'E_CP_NOT_FOUND',
  'E_NOT_A_DIRECTORY',
  'E_CONTEXT_CHANGED',
];
const RACE_ERRNOS = ['ENOENT', 'EEXIST', 'ENOTDIR', 'ELOOP', 'EISDIR', 'ENOTEMPTY'];

let top: string;
beforeAll(async () => {
  top = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-write-race-'));
});
afterAll(async () => {
  await fsp.rm(top, { recursive: true, force: true });
});

/**
 * A tree `root` with directory `root/NAME` (holding `sub/`), a host dir `host` (mode 0755, one
 * file), the swapper running on them; `write(n)` again and again for `ms` (at least 20 times);
 * then the host dir must hold only its own file, with its mode. Returns the outcomes.
 */
async function race(t: string, name: string, ms: number, write: (root: string, n: number) => Promise<void>) {
  const dir = path.join(top, t);
  const root = path.join(dir, 'root');
  const host = path.join(dir, 'host');
  await fsp.mkdir(path.join(root, name, 'sub'), { recursive: true });
  await fsp.mkdir(host, { mode: 0o755 });
  await fsp.chmod(host, 0o755);
  await fsp.writeFile(path.join(host, 'own'), 'host');
  const hostSt = await fsp.stat(host);
  const child = spawn(process.execPath, ['-e', DIR_SWAPPER, root, name, host], { stdio: 'ignore' });
  const outcomes = new Map<string, number>();
  const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  try {
    const until = Date.now() + ms;
    for (let n = 0; Date.now() < until || n < 20; n++) {
      try {
        await write(root, n);
        count('written');
      } catch (e) {
        const code = isVlabError(e) ? e.code : (e as NodeJS.ErrnoException).code;
        if (!code || !(RACE_CODES.includes(code) || RACE_ERRNOS.includes(code))) throw e;
        count(code);
      }
      // checked after every write: a later swap must not hide where an earlier one wrote
      expect(fs.readdirSync(host)).toEqual(['own']);
    }
  } finally {
    child.kill();
    await new Promise((r) => child.once('exit', r));
  }
  const st = await fsp.stat(host);
  expect({ mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtimeMs }).toEqual({
    mode: hostSt.mode & 0o7777,
    uid: hostSt.uid,
    gid: hostSt.gid,
    mtime: hostSt.mtimeMs,
  });
  expect(fs.readFileSync(path.join(host, 'own'), 'utf8')).toBe('host');
  return Object.fromEntries(outcomes);
}

const entry = (e: Partial<PlanEntry> & Pick<PlanEntry, 'path' | 'type'>): PlanEntry => ({
  mode: 0o644,
  uid: 0,
  gid: 0,
  mtime: 1_000_000,
  size: 0,
  linkname: '',
  opaque: false,
  unchanged: false,
  ...e,
});

describe('writes into a tree whose directory is swapped for a link to a host dir', () => {
  it('vbuild cp HOSTFILE CTR:/dir/ and CTR:/dir/sub/ (copyToContainer): never into the host dir', async () => {
    const src = path.join(top, 'cp-src');
    await fsp.writeFile(src, 'to the container');
    await fsp.mkdir(path.join(top, 'cp-srcdir', 'inner'), { recursive: true });
    await fsp.writeFile(path.join(top, 'cp-srcdir', 'inner', 'f'), 'f');
    const out = await race('cp', 'dir', 1500, async (root, n) => {
      if (n % 3 === 0) await copyToContainer(root, src, '/dir/');
      else if (n % 3 === 1) await copyToContainer(root, src, `/dir/sub/f${n}`);
      else await copyToContainer(root, path.join(top, 'cp-srcdir'), '/dir/');
    });
    expect(out.written).toBeGreaterThan(0);
  });

  it('COPY into a stage tree (writeCopyInto): files, dirs, links, metadata never reach the host dir', async () => {
    const src = path.join(top, 'copy-src');
    await fsp.writeFile(src, 'copied');
    const srcStat = fs.statSync(src);
    const out = await race('copy', 'd', 1500, async (root, n) => {
      await writeCopyInto(root, {
        entries: [
          // `d` as the image has it; `sub` under it changed (mode, owner, mtime set through it)
          entry({ path: 'd', type: 'dir', mode: 0o755, unchanged: true }),
          entry({ path: 'd/sub', type: 'dir', mode: 0o700 }),
          entry({
            path: `d/f${n}`,
            type: 'file',
            mode: 0o4755,
            size: srcStat.size,
            source: src,
            srcStat: { dev: srcStat.dev, ino: srcStat.ino, size: srcStat.size },
          } as Partial<PlanEntry> as PlanEntry),
          entry({ path: `d/l${n}`, type: 'symlink', mode: 0o777, linkname: '/etc/passwd' }),
          entry({ path: `d/sub/h${n}`, type: 'link', linkname: `d/f${n}` }),
        ],
        extracts: [],
      });
    });
    expect(out.written).toBeGreaterThan(0);
  });

  it('COPY into a stage tree: a directory entry replacing the swapped one is not chmod/chowned on the host', async () => {
    const out = await race('copydir', 'd', 1500, async (root) => {
      await writeCopyInto(root, {
        entries: [entry({ path: 'd', type: 'dir', mode: 0o700, uid: 1234, gid: 1234, mtime: 5 })],
        extracts: [],
      });
    });
    expect(out.written).toBeGreaterThan(0);
  });

  it('WORKDIR (mkdirInRoot): never makes a directory in the host dir', async () => {
    const out = await race('workdir', 'd', 1500, async (root, n) => {
      await mkdirInRoot(root, `/d/w${n}/x`, { uid: 0, gid: 0 }, 0o700);
      await mkdirInRoot(root, `/d/sub`, { uid: 0, gid: 0 }, 0o700);
    });
    expect(out.written).toBeGreaterThan(0);
  });
  it('ADD of a local archive (writeCopyInto extracts): the archive never unpacks into the host dir', async () => {
    // an archive of a file, a dir with a file, a symlink and a hard link
    const a = path.join(top, 'add-src');
    await fsp.mkdir(path.join(a, 'in'), { recursive: true });
    await fsp.writeFile(path.join(a, 'evil'), 'pwned');
    await fsp.writeFile(path.join(a, 'in', 'f'), 'f');
    await fsp.symlink('/etc/passwd', path.join(a, 'lnk'));
    await fsp.link(path.join(a, 'evil'), path.join(a, 'in', 'hard'));
    const archive = path.join(top, 'add.tar');
    execFileSync('tar', ['-C', a, '-cf', archive, 'evil', 'in', 'lnk']);
    const st = fs.statSync(archive);
    const out = await race('add', 'd', 1500, async (root, n) => {
      await writeCopyInto(root, {
        entries: [],
        extracts: [
          {
            archive,
            srcStat: { dev: st.dev, ino: st.ino, size: st.size },
            format: 'tar',
            dest: n % 2 ? '/d' : '/d/sub',
          } as CopyPlan['extracts'][number],
        ],
      });
    });
    expect(out.written).toBeGreaterThan(0);
  });
  it('RUN mountpoints (createMountpoints): never made in the host dir', async () => {
    const out = await race('mountpoints', 'd', 1500, async (root, n) => {
      const c = await createMountpoints(root, [
        { target: `/d/m${n}/x`, kind: 'dir' },
        { target: `/d/sub/f${n}`, kind: 'file' },
      ]);
      await removeMountpoints(c);
    });
    expect(out.written).toBeGreaterThan(0);
  });
});

describe('removal from a tree whose directory is swapped for a link to a host dir', () => {
  it('RUN mountpoints (removeMountpoints): never removes a host entry, never touches a host dir', async () => {
    const dir = path.join(top, 'mountpoints-remove');
    const root = path.join(dir, 'root');
    const host = path.join(dir, 'host');
    await fsp.mkdir(path.join(root, 'd', 'sub'), { recursive: true });
    // what the removal would take on the host: an empty dir and an empty file by the mountpoints' names
    await fsp.mkdir(path.join(host, 'sub', 'm'), { recursive: true });
    await fsp.writeFile(path.join(host, 'sub', 'f'), '');
    await fsp.utimes(path.join(host, 'sub'), 1_000_000, 1_000_000);
    const child = spawn(process.execPath, ['-e', DIR_SWAPPER, root, 'd', host], { stdio: 'ignore' });
    let removed = 0;
    try {
      for (let n = 0, until = Date.now() + 1500; Date.now() < until || removed < 20; n++) {
        let c;
        try {
          c = await createMountpoints(root, [
            { target: '/d/sub/m', kind: 'dir' },
            { target: '/d/sub/f', kind: 'file' },
          ]);
        } catch (e) {
          const code = isVlabError(e) ? e.code : (e as NodeJS.ErrnoException).code;
          if (!code || !(RACE_CODES.includes(code) || RACE_ERRNOS.includes(code))) throw e;
          continue;
        }
        await removeMountpoints(c);
        removed++;
        expect(fs.readdirSync(path.join(host, 'sub')).sort()).toEqual(['f', 'm']);
        expect(fs.statSync(path.join(host, 'sub')).mtimeMs).toBe(1_000_000_000);
      }
    } finally {
      child.kill();
      await new Promise((r) => child.once('exit', r));
    }
    expect(removed).toBeGreaterThanOrEqual(20);
  });
});
