/**
 * `RUN --mount=type=bind` against a hostile context and Dockerfile (issue 10, hole 4). BuildKit's
 * semantics: the source resolves inside the context (a symlink `link -> /abs` means
 * `<context>/abs`), the mount is a read-only view, and `rw` gives the step a throwaway copy whose
 * writes are gone afterwards. The context on disk is never written. Escapes point at marker files
 * in a scratch dir made here, outside the context.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { build, type BuildOptions } from '@vlab/image';
import { freshStore, makeContext, removeStore, umociUnpack } from './helpers.ts';

let root: string;
let outside: string;
const MARK = 'host marker, must not change\n';

beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  await removeStore(root);
});
beforeEach(async () => {
  outside = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-bind-outside-'));
  await fsp.writeFile(path.join(outside, 'marker'), MARK);
});
afterEach(async () => {
  await fsp.rm(outside, { recursive: true, force: true });
});

/** Everything about a tree that a write could change (not atime), entry by entry. */
async function treeState(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    const p = path.join(dir, rel);
    const st = await fsp.lstat(p, { bigint: true });
    let body = '';
    if (st.isSymbolicLink()) body = `-> ${await fsp.readlink(p)}`;
    else if (st.isFile()) body = createHash('sha256').update(await fsp.readFile(p)).digest('hex');
    out.push(`${rel || '.'} mode=${st.mode} uid=${st.uid} gid=${st.gid} size=${st.size} mtime=${st.mtimeNs} ${body}`);
    if (st.isDirectory()) for (const name of (await fsp.readdir(p)).sort()) await walk(path.join(rel, name));
  };
  await walk('');
  return out;
}

async function markerUntouched(): Promise<void> {
  expect(await fsp.readdir(outside)).toEqual(['marker']);
  expect(await fsp.readFile(path.join(outside, 'marker'), 'utf8')).toBe(MARK);
}

let n = 0;
/** Build in context `ctx` (kept, so the test can check it); the image's rootfs on success. */
async function buildIn(ctx: string, dockerfile: string, executor?: BuildOptions['executor']): Promise<{ rootfs: string; read: (p: string) => Promise<string> }> {
  await fsp.writeFile(path.join(ctx, 'Dockerfile'), dockerfile);
  const tag = `bind${++n}:latest`;
  await build({ context: ctx, tags: [tag], root, noCache: true, executor });
  const rootfs = await umociUnpack(root, tag);
  return { rootfs, read: (p) => fsp.readFile(path.join(rootfs, p), 'utf8') };
}

async function buildFails(ctx: string, dockerfile: string): Promise<{ code: string; message: string }> {
  try {
    await buildIn(ctx, dockerfile);
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('build succeeded but should have failed');
}

/** No mount left under the store or the context, no throwaway dir left in the store's tmp. */
async function nothingLeft(ctx: string): Promise<void> {
  const mounts = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  expect(mounts).not.toContain(root);
  expect(mounts).not.toContain(ctx);
  expect((await fsp.readdir(path.join(root, 'tmp'))).filter((f) => !f.startsWith('mnt-'))).toEqual([]);
}

describe('RUN --mount=type=bind stays in the context', () => {
  it('an absolute context symlink resolves inside the context: the host path is neither seen nor written', async () => {
    const ctx = await makeContext({ 'abs/sub/inside': 'in the context\n' });
    try {
      await fsp.symlink(outside, path.join(ctx, 'link'));
      // ro: the RUN must not read the marker; rw: nor write it.
      for (const rw of ['', ',rw']) {
        const e = await buildFails(ctx, `FROM busybox\nRUN --mount=type=bind,source=link,target=/m${rw} sh -c 'cat /m/marker > /seen; echo pwned > /m/marker; true'\n`);
        expect(e.code).toBe('E_RUN_MOUNT');
        expect(e.message).toContain('link');
        await markerUntouched();
      }
      // What BuildKit does with `link -> /abs/sub`: <context>/abs/sub.
      await fsp.symlink('/abs/sub', path.join(ctx, 'inlink'));
      const { read } = await buildIn(ctx, 'FROM busybox\nRUN --mount=type=bind,source=inlink,target=/m cat /m/inside > /seen\n');
      expect(await read('seen')).toBe('in the context\n');
      await nothingLeft(ctx);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });

  // Read-only is the executor's part: both must honour it.
  it.each(['builtin', 'oci'] as const)('rw gives each step a throwaway view, ro is read-only: the context on disk is never written (%s executor)', async (executor) => {
    const ctx = await makeContext({ 'a.txt': 'A\n', 'b.txt': 'B\n', 'd/e.txt': 'E\n' });
    try {
      await fsp.symlink('a.txt', path.join(ctx, 'rel-link'));
      await fsp.writeFile(path.join(ctx, 'Dockerfile'), 'placeholder');
      const before = await treeState(ctx);
      const df = [
        'FROM busybox',
        "RUN --mount=type=bind,target=/ctx,rw sh -ec 'echo new > /ctx/new; rm /ctx/a.txt; echo changed > /ctx/b.txt; rm -r /ctx/d; ln -s / /ctx/root; chmod 700 /ctx; cat /ctx/b.txt > /during'",
        "RUN --mount=type=bind,target=/ctx,rw sh -ec 'ls -a /ctx > /listing; cat /ctx/b.txt > /after; echo again >> /ctx/b.txt'",
        "RUN --mount=type=bind,source=b.txt,target=/f,rw sh -ec 'echo file-write >> /f; cat /f > /file-during'",
        "RUN --mount=type=bind,source=b.txt,target=/f sh -ec 'cat /f > /file-after; if echo x >> /f; then echo writable > /ro; fi'",
        "RUN --mount=type=bind,target=/ctx sh -ec 'if touch /ctx/z || rm /ctx/a.txt; then echo writable > /ro-dir; fi'",
        '',
      ].join('\n');
      const { read, rootfs } = await buildIn(ctx, df, executor);
      // buildIn rewrote the Dockerfile (same name: the directory itself is unchanged).
      const notDf = (l: string) => !l.startsWith('Dockerfile ');
      expect((await treeState(ctx)).filter(notDf)).toEqual(before.filter(notDf));
      expect(await read('during')).toBe('changed\n');
      expect((await read('listing')).split('\n').filter(Boolean).sort()).toEqual(['.', '..', 'Dockerfile', 'a.txt', 'b.txt', 'd', 'rel-link']);
      expect(await read('after')).toBe('B\n');
      expect(await read('file-during')).toBe('B\nfile-write\n');
      expect(await read('file-after')).toBe('B\n');
      await expect(fsp.stat(path.join(rootfs, 'ro'))).rejects.toThrow();
      await expect(fsp.stat(path.join(rootfs, 'ro-dir'))).rejects.toThrow();
      // The mountpoints are not part of the image.
      await expect(fsp.lstat(path.join(rootfs, 'ctx'))).rejects.toThrow();
      await expect(fsp.lstat(path.join(rootfs, 'f'))).rejects.toThrow();
      await nothingLeft(ctx);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });

  it('the two-step attack (plant a symlink through rw, then bind it rw) writes nothing on the host', async () => {
    const ctx = await makeContext({ 'a.txt': 'A\n' });
    try {
      const df = `FROM busybox\nRUN --mount=type=bind,target=/ctx,rw ln -s ${outside} /ctx/x\nRUN --mount=type=bind,source=x,target=/h,rw sh -c 'echo pwned > /h/marker; echo pwned > /h/planted'\n`;
      const e = await buildFails(ctx, df);
      expect(e.code).toBe('E_RUN_MOUNT');
      await markerUntouched();
      await expect(fsp.lstat(path.join(ctx, 'x'))).rejects.toThrow();
      await nothingLeft(ctx);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });

  it('source=../.. and a symlinked intermediate directory stay in the context', async () => {
    const ctx = await makeContext({ 'a.txt': 'A\n' });
    try {
      const { read } = await buildIn(ctx, 'FROM busybox\nRUN --mount=type=bind,source=../..,target=/m ls /m > /listing\n');
      expect((await read('listing')).split('\n').filter(Boolean).sort()).toEqual(['Dockerfile', 'a.txt']);
      // sub -> ../<scratch dir>: from the context dir that is the scratch dir on the host.
      await fsp.symlink(path.join('..', path.basename(outside)), path.join(ctx, 'sub'));
      for (const [source, rw] of [['sub/marker', ',rw'], ['sub', ',rw'], ['sub/marker', '']]) {
        const e = await buildFails(ctx, `FROM busybox\nRUN --mount=type=bind,source=${source},target=/m${rw} sh -c 'cat /m > /seen; echo pwned > /m; echo pwned > /m/marker; true'\n`);
        expect(e.code).toBe('E_RUN_MOUNT');
        await markerUntouched();
      }
      await nothingLeft(ctx);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });
});
