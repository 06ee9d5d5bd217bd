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
import { freshStore, makeContext, removeStore, umociUnpack, fsckProblems } from './helpers.ts';

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
    else if (st.isFile())
      body = createHash('sha256')
        .update(await fsp.readFile(p))
        .digest('hex');
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
async function buildIn(
  ctx: string,
  dockerfile: string,
  executor?: BuildOptions['executor'],
): Promise<{ rootfs: string; read: (p: string) => Promise<string> }> {
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
        const e = await buildFails(
          ctx,
          `FROM busybox\nRUN --mount=type=bind,source=link,target=/m${rw} sh -c 'cat /m/marker > /seen; echo pwned > /m/marker; true'\n`,
        );
        expect(e.code).toBe('E_RUN_MOUNT');
        expect(e.message).toContain('link');
        await markerUntouched();
      }
      // What BuildKit does with `link -> /abs/sub`: <context>/abs/sub.
      await fsp.symlink('/abs/sub', path.join(ctx, 'inlink'));
      const { read } = await buildIn(
        ctx,
        'FROM busybox\nRUN --mount=type=bind,source=inlink,target=/m cat /m/inside > /seen\n',
      );
      expect(await read('seen')).toBe('in the context\n');
      await nothingLeft(ctx);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });

  // Read-only is the executor's part: both must honour it.
  it.each(['builtin', 'oci'] as const)(
    'rw gives each step a throwaway view, ro is read-only: the context on disk is never written (%s executor)',
    async (executor) => {
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
        expect((await read('listing')).split('\n').filter(Boolean).sort()).toEqual([
          '.',
          '..',
          'Dockerfile',
          'a.txt',
          'b.txt',
          'd',
          'rel-link',
        ]);
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
    },
  );

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
      const { read } = await buildIn(
        ctx,
        'FROM busybox\nRUN --mount=type=bind,source=../..,target=/m ls /m > /listing\n',
      );
      expect((await read('listing')).split('\n').filter(Boolean).sort()).toEqual(['Dockerfile', 'a.txt']);
      // sub -> ../<scratch dir>: from the context dir that is the scratch dir on the host.
      await fsp.symlink(path.join('..', path.basename(outside)), path.join(ctx, 'sub'));
      for (const [source, rw] of [
        ['sub/marker', ',rw'],
        ['sub', ',rw'],
        ['sub/marker', ''],
      ]) {
        const e = await buildFails(
          ctx,
          `FROM busybox\nRUN --mount=type=bind,source=${source},target=/m${rw} sh -c 'cat /m > /seen; echo pwned > /m; echo pwned > /m/marker; true'\n`,
        );
        expect(e.code).toBe('E_RUN_MOUNT');
        await markerUntouched();
      }
      await nothingLeft(ctx);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });
});

describe('RUN --mount=type=bind,from=…', () => {
  it('an earlier stage, a named image and a named directory: read-only trees, symlinks resolved inside them, released after the step', async () => {
    const ctx = await makeContext({ 'a.txt': 'A\n' });
    const named = await makeContext({ 'n.txt': 'named dir\n' });
    try {
      const df = [
        'FROM busybox AS tools',
        `RUN mkdir -p /opt && echo from-stage > /opt/tool && ln -s /opt /optlink && ln -s ${outside} /escape`,
        'FROM busybox',
        'RUN --mount=type=bind,from=tools,source=/optlink/tool,target=/t cat /t > /got-stage',
        'RUN --mount=type=bind,from=tools,source=/opt,target=/o,rw sh -c "echo x > /o/new && cat /o/tool" > /got-rw',
        'RUN --mount=type=bind,from=img,source=/bin/busybox,target=/bb test -x /bb && echo img-ok > /got-img',
        'RUN --mount=type=bind,from=dir,source=n.txt,target=/n cat /n > /got-dir',
        'RUN --mount=type=bind,from=tools,source=/opt,target=/o sh -c "echo x > /o/new" || echo ro > /got-ro',
        '',
      ].join('\n');
      await fsp.writeFile(path.join(ctx, 'Dockerfile'), df);
      const tag = `bindfrom${++n}:latest`;
      await build({
        context: ctx,
        tags: [tag],
        root,
        noCache: true,
        buildContexts: { img: 'docker-image://busybox:latest', dir: named },
      });
      const rootfs = await umociUnpack(root, tag);
      const read = (p: string) => fsp.readFile(path.join(rootfs, p), 'utf8');
      expect(await read('got-stage')).toBe('from-stage\n');
      expect(await read('got-rw')).toBe('from-stage\n');
      expect(await read('got-img')).toBe('img-ok\n');
      expect(await read('got-dir')).toBe('named dir\n');
      expect(await read('got-ro')).toBe('ro\n');
      // The absolute link in the stage means /… in the stage, never the host.
      const e = await buildFails(
        ctx,
        `FROM busybox AS tools\nRUN ln -s ${outside} /escape\nFROM busybox\nRUN --mount=type=bind,from=tools,source=/escape/marker,target=/m cat /m\n`,
      );
      expect(e.code).toBe('E_RUN_MOUNT');
      await markerUntouched();
      await nothingLeft(ctx);
      await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
      await fsp.rm(named, { recursive: true, force: true });
    }
  });

  it("the step's cache key follows the mounted stage: a change there runs the step again", async () => {
    const ctx = await makeContext({ 'v.txt': 'one\n' });
    try {
      await fsp.writeFile(
        path.join(ctx, 'Dockerfile'),
        'FROM busybox AS src\nCOPY v.txt /v\nFROM busybox\nRUN --mount=type=bind,from=src,source=/v,target=/v cat /v > /seen\n',
      );
      const once = async () => {
        const events: { type: string }[] = [];
        await build({ context: ctx, tags: [`bindkey${++n}:latest`], root, onEvent: (e) => events.push(e) });
        return events.filter((e) => e.type === 'step-cached').length;
      };
      await once();
      expect(await once()).toBe(2); // COPY and RUN
      await fsp.writeFile(path.join(ctx, 'v.txt'), 'two\n');
      expect(await once()).toBe(0);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });

  it('a context bind is keyed by what it shows: a change runs the step again, a .dockerignored change does not', async () => {
    const ctx = await makeContext({
      'v.txt': 'one\n',
      'd/a': 'a\n',
      'd/skip.log': 'x\n',
      '.dockerignore': '**/*.log\n',
    });
    try {
      await fsp.writeFile(
        path.join(ctx, 'Dockerfile'),
        'FROM busybox\nRUN --mount=type=bind,source=v.txt,target=/v --mount=type=bind,source=d,target=/d cat /v /d/a > /seen\n',
      );
      const once = async () => {
        const events: { type: string }[] = [];
        await build({ context: ctx, tags: [`ctxkey${++n}:latest`], root, onEvent: (e) => events.push(e) });
        return events.filter((e) => e.type === 'step-cached').length;
      };
      await once();
      expect(await once()).toBe(1);
      await fsp.writeFile(path.join(ctx, 'v.txt'), 'two\n'); // a bound file
      expect(await once()).toBe(0);
      await fsp.writeFile(path.join(ctx, 'd/a'), 'b\n'); // a file in a bound dir
      expect(await once()).toBe(0);
      await fsp.writeFile(path.join(ctx, 'd/skip.log'), 'y\n'); // excluded: not part of the key
      expect(await once()).toBe(1);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });

  it('a context bind shows what the context has (.dockerignore applied), read-only and rw; an unfiltered source is bound as it is', async () => {
    const ctx = await makeContext({
      '.dockerignore': '**/*.log\nsecret\nd/x\n!d/x/keep\n',
      'a.txt': 'A\n',
      'app.log': 'log\n',
      'secret/key': 'k\n',
      'd/x/drop': 'drop\n',
      'd/x/keep': 'keep\n',
      'd/y.log': 'y\n',
      'plain/f': 'f\n',
    });
    try {
      await fsp.writeFile(path.join(ctx, 'Dockerfile'), 'placeholder');
      const before = await treeState(ctx);
      const df = [
        'FROM busybox',
        'RUN --mount=type=bind,target=/ctx find /ctx | sort > /ro-view',
        "RUN --mount=type=bind,target=/ctx,rw sh -ec 'find /ctx | sort > /rw-view; echo w > /ctx/a.txt; echo w > /ctx/d/x/keep'",
        'RUN --mount=type=bind,source=d,target=/d,rw find /d | sort > /sub-view',
        'RUN --mount=type=bind,source=plain,target=/p sh -c \'grep " /p " /proc/self/mountinfo > /plain-mount\'',
        '',
      ].join('\n');
      const { read } = await buildIn(ctx, df);
      const shown = ['', '/.dockerignore', '/Dockerfile', '/a.txt', '/d', '/d/x', '/d/x/keep', '/plain', '/plain/f'];
      expect((await read('ro-view')).split('\n').filter(Boolean)).toEqual(shown.map((p) => `/ctx${p}`));
      expect((await read('rw-view')).split('\n').filter(Boolean)).toEqual(shown.map((p) => `/ctx${p}`));
      expect((await read('sub-view')).split('\n').filter(Boolean)).toEqual(['/d', '/d/x', '/d/x/keep']);
      // nothing excluded under plain/: the context dir itself is bound (mountinfo's root field)
      expect((await read('plain-mount')).split(' ')[3]).toBe(path.join(await fsp.realpath(ctx), 'plain'));
      // the views were made of the context's files: writes through rw reached none of them
      const notDf = (l: string) => !l.startsWith('Dockerfile ');
      expect((await treeState(ctx)).filter(notDf)).toEqual(before.filter(notDf));
      const e = await buildFails(ctx, 'FROM busybox\nRUN --mount=type=bind,source=app.log,target=/l cat /l\n');
      expect(e.code).toBe('E_RUN_MOUNT');
      expect(e.message).toContain('.dockerignore');
      await nothingLeft(ctx);
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });

  it('a transport in from= is E_NAMED_CONTEXT, an unknown name is E_IMAGE_NOT_FOUND', async () => {
    const ctx = await makeContext({});
    try {
      const e = await buildFails(
        ctx,
        `FROM busybox\nRUN --mount=type=bind,from=oci-layout://${outside},target=/m true\n`,
      );
      expect(e.code).toBe('E_NAMED_CONTEXT');
      expect(e.message).toContain(`--build-context src=oci-layout://${outside}`);
      expect(e.message).toContain('RUN --mount=type=bind,from=src');
      expect((await buildFails(ctx, 'FROM busybox\nRUN --mount=type=bind,from=nosuch,target=/m true\n')).code).toBe(
        'E_IMAGE_NOT_FOUND',
      );
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });
});

describe('the store after every case above', () => {
  it('fsck is clean: nothing corrupt or dangling, nothing a refused case left behind', async () => {
    expect(await fsckProblems(root)).toEqual([]);
  });
});
