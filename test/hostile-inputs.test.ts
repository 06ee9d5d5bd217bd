/**
 * Hostile build inputs that must stay inside their root (issue 10, holes 2, 3 and parts of 12):
 * heredoc names, ADD URLs chosen by a server, backtracking patterns, and a local export of an
 * image holding setuid-root files and device nodes. Escapes aim at marker files in a scratch dir
 * made here; each test asserts the markers are unchanged.
 */
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { build, type BuildOptions } from '@vlab/image';
import { exec, freshStore, makeContext, removeStore, umociUnpack, fsckProblems } from './helpers.ts';

let root: string;
let scratch: string;
let server: http.Server;
let baseUrl: string;
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  root = await freshStore();
  server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/endless')) {
      // An endless body, bounded here so the server stops by itself (64 MiB) even if nobody aborts.
      res.writeHead(200);
      const chunk = Buffer.alloc(64 << 10, 0x61);
      let sent = 0;
      const pump = () => {
        while (sent < 64 << 20 && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (url.startsWith('/big-length')) {
      // Declares 10 GiB, sends a few bytes, then hangs up after 2 s.
      res.writeHead(200, { 'content-length': String(10 * 2 ** 30) });
      res.write('short');
      const t = setTimeout(() => res.destroy(), 2000);
      timers.add(t);
      res.on('close', () => clearTimeout(t));
    } else if (url.startsWith('/stall')) {
      // A few bytes, then silence for 3 s (then the end): a stalled download.
      res.writeHead(200);
      res.write('start');
      const t = setTimeout(() => res.end('end'), 3000);
      timers.add(t);
      res.on('close', () => clearTimeout(t));
    } else if (url.startsWith('/redirect/')) {
      const n = Number(url.split('/')[2]);
      if (n > 0) res.writeHead(302, { location: `/redirect/${n - 1}` }).end();
      else res.writeHead(200).end('landed');
    } else {
      // Any other path: a small body, whatever hostile name the URL carries.
      res.writeHead(200);
      res.end('from the server\n');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const t of timers) clearTimeout(t);
  server.closeAllConnections();
  server.close();
  await removeStore(root);
});

beforeEach(async () => {
  // The scratch dir sits beside every temp dir the build could make (os.tmpdir()), with a marker.
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-scratch-'));
  await fsp.writeFile(path.join(scratch, 'keep'), 'marker');
});
afterEach(async () => {
  await fsp.rm(scratch, { recursive: true, force: true });
});

async function scratchUnchanged(): Promise<void> {
  expect((await fsp.readdir(scratch)).sort()).toEqual(['keep']);
  expect(await fsp.readFile(path.join(scratch, 'keep'), 'utf8')).toBe('marker');
}

let n = 0;
async function tryBuild(dockerfile: string, opts: Partial<BuildOptions> = {}, files: Record<string, string> = {}) {
  const ctx = await makeContext({ Dockerfile: dockerfile, ...files });
  const tag = `hostile${++n}:latest`;
  try {
    await build({ context: ctx, tags: [tag], root, ...opts });
    return { tag, error: undefined };
  } catch (e) {
    return { tag, error: e as { code: string; message: string; location?: { line: number; column: number } } };
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
}

describe('COPY heredoc names are not host paths (hole 2)', () => {
  const up = (depth: number) => '../'.repeat(depth);
  // The mounted path joined names to os.tmpdir()/vlab-heredoc-X, the fast path to <store>/tmp/heredoc-X.
  it.each([
    ['mounted path', '1', 1],
    ['fast path', '0', 3],
  ])('%s: COPY <<../x is refused with a located E_PARSE, nothing is written outside', async (_name, noFast, depth) => {
    const name = `${up(depth)}${path.basename(scratch)}/planted`;
    const prev = process.env.VLAB_NO_FAST_COPY;
    process.env.VLAB_NO_FAST_COPY = noFast;
    try {
      const { error } = await tryBuild(`FROM busybox\nCOPY <<${name} /dst/\nhostile\n${name}\n`);
      await scratchUnchanged();
      expect(error?.code).toBe('E_PARSE');
      expect(error?.location).toMatchObject({ line: 2 });
      expect(error?.message).toMatch(/heredoc/i);
    } finally {
      if (prev === undefined) delete process.env.VLAB_NO_FAST_COPY;
      else process.env.VLAB_NO_FAST_COPY = prev;
    }
    await scratchUnchanged();
  });

  it('a plain heredoc name is the file name in the image, on both paths', async () => {
    for (const noFast of ['0', '1']) {
      process.env.VLAB_NO_FAST_COPY = noFast;
      const { tag, error } = await tryBuild(
        'FROM busybox\nCOPY <<one.txt <<two.txt /dst/\nfirst\none.txt\nsecond\ntwo.txt\n',
      );
      delete process.env.VLAB_NO_FAST_COPY;
      expect(error).toBeUndefined();
      const rootfs = await umociUnpack(root, tag);
      expect(await fsp.readFile(path.join(rootfs, 'dst/one.txt'), 'utf8')).toBe('first\n');
      expect(await fsp.readFile(path.join(rootfs, 'dst/two.txt'), 'utf8')).toBe('second\n');
      await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
    }
  });
});

describe('ADD <url> (hole 3)', () => {
  it('a name with encoded ../ stays one file name in the image; the cleanup removes only its own dir', async () => {
    const hostile = `..%2F${path.basename(scratch)}%2Fplanted`;
    const { tag, error } = await tryBuild(`FROM busybox\nADD ${baseUrl}/files/${hostile} /got/\n`);
    await scratchUnchanged();
    expect(error).toBeUndefined();
    const rootfs = await umociUnpack(root, tag);
    // As BuildKit: the base name of the decoded path.
    expect(await fsp.readdir(path.join(rootfs, 'got'))).toEqual(['planted']);
    expect(await fsp.readFile(path.join(rootfs, 'got/planted'), 'utf8')).toBe('from the server\n');
    await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
  });

  it('a name that decodes to "..", or to nothing, becomes __unnamed__ as in BuildKit', async () => {
    const { tag, error } = await tryBuild(`FROM busybox\nADD ${baseUrl}/files/%2E%2E /a/\nADD ${baseUrl}/ /b/\n`);
    expect(error).toBeUndefined();
    const rootfs = await umociUnpack(root, tag);
    expect(await fsp.readdir(path.join(rootfs, 'a'))).toEqual(['__unnamed__']);
    expect(await fsp.readdir(path.join(rootfs, 'b'))).toEqual(['__unnamed__']);
    await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
  });

  it('an endless body stops at the size cap with E_ADD_TOO_LARGE', async () => {
    const t0 = Date.now();
    const { error } = await tryBuild(`FROM busybox\nADD ${baseUrl}/endless /big\n`, {
      addLimits: { maxBytes: 1 << 20 },
    });
    expect(error?.code).toBe('E_ADD_TOO_LARGE');
    expect(Date.now() - t0).toBeLessThan(10_000);
    const t1 = Date.now();
    const { error: declared } = await tryBuild(`FROM busybox\nADD ${baseUrl}/big-length /big\n`, {
      addLimits: { maxBytes: 1 << 20 },
    });
    expect(declared?.code).toBe('E_ADD_TOO_LARGE');
    expect(Date.now() - t1).toBeLessThan(1500); // refused on the header, not after the body
  });

  it('a stalled body ends with E_ADD_TIMEOUT after the idle timeout, and a slow one after the total timeout', async () => {
    const t0 = Date.now();
    const { error } = await tryBuild(`FROM busybox\nADD ${baseUrl}/stall /s\n`, { addLimits: { idleTimeoutMs: 300 } });
    expect(error?.code).toBe('E_ADD_TIMEOUT');
    expect(Date.now() - t0).toBeLessThan(2500);
    const { error: total } = await tryBuild(`FROM busybox\nADD ${baseUrl}/stall?total /s\n`, {
      addLimits: { timeoutMs: 400 },
    });
    expect(total?.code).toBe('E_ADD_TIMEOUT');
  });

  it('redirects are capped', async () => {
    const { error } = await tryBuild(`FROM busybox\nADD ${baseUrl}/redirect/5 /r\n`, {
      addLimits: { maxRedirects: 2 },
    });
    expect(error?.code).toBe('E_ADD_FETCH');
    expect(error?.message).toMatch(/redirect/);
    const { tag, error: ok } = await tryBuild(`FROM busybox\nADD ${baseUrl}/redirect/2 /r\n`, {
      addLimits: { maxRedirects: 2 },
    });
    expect(ok).toBeUndefined();
    const rootfs = await umociUnpack(root, tag);
    expect(await fsp.readFile(path.join(rootfs, 'r'), 'utf8')).toBe('landed');
    await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
  });
});

describe('backtracking patterns finish fast (hole 12)', () => {
  const stars = '*a'.repeat(12) + 'b';
  it("a COPY glob and a .dockerignore line over a long name of a's", async () => {
    const long = 'a'.repeat(40);
    const t0 = Date.now();
    const { error } = await tryBuild(
      `FROM busybox\nCOPY ${stars} /x/\n`,
      {},
      { [long]: 'x', '.dockerignore': `**/${stars}\n` },
    );
    const ms = Date.now() - t0;
    expect(error?.code).toBe('E_COPY_SOURCE'); // no match: the name has no b
    expect(ms).toBeLessThan(2000 + 1500); // a build costs ~1 s here; exponential code never returns
  });

  it('a "(" in .dockerignore is a literal, an unclosed "[" is E_DOCKERIGNORE with its line', async () => {
    const { tag, error } = await tryBuild(
      'FROM busybox\nCOPY . /ctx/\n',
      {},
      { '.dockerignore': 'a(1)\nb(\n', 'a(1)': 'x', 'b(': 'y', 'c(2)': 'z' },
    );
    expect(error).toBeUndefined();
    const rootfs = await umociUnpack(root, tag);
    expect((await fsp.readdir(path.join(rootfs, 'ctx'))).sort()).toEqual(['.dockerignore', 'Dockerfile', 'c(2)']);
    await fsp.rm(path.dirname(rootfs), { recursive: true, force: true });
    const { error: bad } = await tryBuild('FROM busybox\nCOPY . /ctx/\n', {}, { '.dockerignore': '# x\nok\n[a-\n' });
    expect(bad?.code).toBe('E_DOCKERIGNORE');
    expect(bad?.message).toMatch(/\.dockerignore:3/);
  });
});

describe('--output type=local (hole 12)', () => {
  it('drops device nodes, clears setuid/setgid, does not write through a symlink in DEST', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nADD layer.tar /x/\n' });
    const out = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-out-'));
    const out2 = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-out-'));
    try {
      const tree = path.join(ctx, 'tree');
      await fsp.mkdir(path.join(tree, 'sub'), { recursive: true });
      await fsp.writeFile(path.join(tree, 'suid'), '#!/bin/sh\n', { mode: 0o755 });
      await fsp.chmod(path.join(tree, 'suid'), 0o6755);
      await fsp.writeFile(path.join(tree, 'sub/file'), 'inside');
      await fsp.symlink('/etc/passwd', path.join(tree, 'link'));
      await exec('mknod', [path.join(tree, 'null'), 'c', '1', '3']);
      await exec('tar', [
        '--numeric-owner',
        '--owner=0',
        '--group=0',
        '-C',
        tree,
        '-cf',
        path.join(ctx, 'layer.tar'),
        '.',
      ]);
      await fsp.rm(tree, { recursive: true });
      // out2 already holds x/sub -> scratch: the export must replace the link, not write through it.
      await fsp.mkdir(path.join(out2, 'x'));
      await fsp.symlink(scratch, path.join(out2, 'x/sub'));
      const error = await build({
        context: ctx,
        root,
        output: [
          { type: 'local', dest: out },
          { type: 'local', dest: out2 },
        ],
      }).then(
        () => undefined,
        (e: Error) => e,
      );
      const suid = await fsp.lstat(path.join(out, 'x/suid'));
      expect(suid.mode & 0o7777).toBe(0o755);
      await expect(fsp.lstat(path.join(out, 'x/null'))).rejects.toThrow(/ENOENT/);
      expect((await fsp.lstat(path.join(out, 'x/sub'))).isDirectory()).toBe(true);
      expect(await fsp.readFile(path.join(out, 'x/sub/file'), 'utf8')).toBe('inside');
      expect(await fsp.readlink(path.join(out, 'x/link'))).toBe('/etc/passwd');
      expect((await fsp.lstat(path.join(out, 'bin/busybox'))).isFile()).toBe(true);
      expect(error).toBeUndefined();
      await scratchUnchanged();
      expect((await fsp.lstat(path.join(out2, 'x/sub'))).isDirectory()).toBe(true);
      expect(await fsp.readFile(path.join(out2, 'x/sub/file'), 'utf8')).toBe('inside');
    } finally {
      await fsp.rm(out2, { recursive: true, force: true });
      await fsp.rm(ctx, { recursive: true, force: true });
      await fsp.rm(out, { recursive: true, force: true });
    }
  });
});

describe('the store after every case above', () => {
  it('fsck is clean: nothing corrupt or dangling, nothing a refused case left behind', async () => {
    expect(await fsckProblems(root)).toEqual([]);
  });
});
