import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BuildContext, excluder } from './context.ts';
import { compileGlob } from './patterns.ts';
import { compileIgnore } from './ignore.ts';
import { FileHashCache } from './hash-cache.ts';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-ctxunit-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function write(files: string[]): Promise<void> {
  for (const f of files) {
    await fsp.mkdir(path.dirname(path.join(dir, f)), { recursive: true });
    await fsp.writeFile(path.join(dir, f), f);
  }
}

describe('.dockerignore (Docker pattern rules)', () => {
  // Each row: patterns, path, ignored? — cases from Docker's docs and moby's fileutils tests.
  it.each([
    ['*.md', 'README.md', true],
    ['*.md', 'docs/README.md', false], // `*` does not cross directories
    ['**/*.md', 'docs/deep/README.md', true],
    ['/build', 'build/out.o', true], // leading '/' is the context root; a dir excludes its subtree
    ['build/', 'build/out.o', true],
    ['temp?', 'temp1', true],
    ['temp?', 'temp12', false],
    ['*\n!keep.md', 'keep.md', false], // `!` exception re-includes
    ['docs\n!docs/keep.txt', 'docs/keep.txt', false],
    ['docs\n!docs/keep.txt', 'docs/drop.txt', true],
    ['!x\nx', 'x', true], // the last matching line wins
    ['# comment\n\n  a.txt  ', 'a.txt', true],
    ['**', 'any/thing', true],
  ])('%j ignores %s → %s', (patterns, p, ignored) => {
    expect(compileIgnore(patterns).ignores(p)).toBe(ignored);
  });

  it('a backtracking pattern over a long name finishes fast (issue 10)', () => {
    const t0 = performance.now();
    expect(compileIgnore('**/' + '*a'.repeat(12) + 'b').ignores(`d/${'a'.repeat(40)}`)).toBe(false);
    expect(compileGlob('*a'.repeat(12) + 'b')('a'.repeat(40))).toBe(false);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it.each([
    ['a(1)', 'a(1)', true],
    ['a|b', 'a', false],
    ['x+', 'x+', true],
    ['{a,b}', '{a,b}', true],
    ['$x', '$x', true],
    ['Case', 'case', false],
    ['\\*x', '*x', true],
  ])('regexp characters are literal: %j ignores %s → %s', (patterns, p, ignored) => {
    expect(compileIgnore(patterns).ignores(p)).toBe(ignored);
  });

  it('a bad pattern is E_DOCKERIGNORE with its file and line, never E_INTERNAL', () => {
    for (const bad of ['[a-', 'a[', '!']) {
      expect(() => compileIgnore(`# c\nok\n${bad}\n`, '/ctx/.dockerignore')).toThrow(
        expect.objectContaining({ code: 'E_DOCKERIGNORE', message: expect.stringContaining('/ctx/.dockerignore:3') }),
      );
    }
  });

  it('a bad COPY --exclude pattern is E_BAD_FLAG', () => {
    expect(() => excluder(['ok', '[a-'])).toThrow(
      expect.objectContaining({ code: 'E_BAD_FLAG', message: expect.stringContaining('COPY --exclude:2') }),
    );
  });

  it('the walk honours it, and <Dockerfile>.dockerignore wins over .dockerignore', async () => {
    await write(['a.txt', 'b.log', 'sub/c.log', 'keep/k.log', 'df/Dockerfile']);
    await fsp.writeFile(path.join(dir, '.dockerignore'), '*.log\n');
    await fsp.writeFile(path.join(dir, 'df/Dockerfile.dockerignore'), '**/*.log\n!keep/k.log\n');
    const plain = await BuildContext.open(dir, new FileHashCache());
    expect((await plain.walk()).rels).toEqual(expect.arrayContaining(['a.txt', 'sub/c.log']));
    expect((await plain.walk()).find('b.log')).toBe(-1);
    const own = await BuildContext.open(dir, new FileHashCache(), path.join(dir, 'df/Dockerfile'));
    const keys = (await own.walk()).rels;
    expect(keys).toContain('keep/k.log');
    expect(keys).not.toContain('sub/c.log');
    expect(keys).not.toContain('b.log');
  });
});

describe('a large .dockerignore (issue 10: it blocked the event loop for minutes)', () => {
  it('more than the limits is E_DOCKERIGNORE naming the limit', async () => {
    await fsp.writeFile(
      path.join(dir, '.dockerignore'),
      Array.from({ length: 20_000 }, (_, i) => `**/a*b*c*d*e${i}`).join('\n'),
    );
    await expect(BuildContext.open(dir, new FileHashCache())).rejects.toMatchObject({
      code: 'E_DOCKERIGNORE',
      message: expect.stringMatching(/limit of 10000/),
    });
    await fsp.writeFile(path.join(dir, '.dockerignore'), `# ${'x'.repeat(2 << 20)}\n`);
    await expect(BuildContext.open(dir, new FileHashCache())).rejects.toMatchObject({
      code: 'E_DOCKERIGNORE',
      message: expect.stringMatching(/larger than 1048576 bytes/),
    });
  });

  it('an abort during a long walk rejects promptly: the walk yields to the event loop', async () => {
    await fsp.writeFile(
      path.join(dir, '.dockerignore'),
      Array.from({ length: 4000 }, (_, i) => `**/a*b*c*d*e${i}`).join('\n'),
    );
    await fsp.mkdir(path.join(dir, 'a/b/c/d'), { recursive: true });
    for (let i = 0; i < 2000; i++) await fsp.writeFile(path.join(dir, `a/b/c/d/f${i}`), '');
    const ctl = new AbortController();
    const ctx = await BuildContext.open(dir, new FileHashCache(), undefined, ctl.signal);
    const started = Date.now();
    const walking = ctx.walk().then(
      () => 'done',
      (e: { code: string }) => e.code,
    );
    setTimeout(() => ctl.abort(), 300);
    const outcome = await walking;
    const ms = Date.now() - started;
    expect({ outcome, prompt: ms < 1500 }).toEqual({ outcome: 'E_ABORTED', prompt: true });
  });
});

describe('COPY sources', () => {
  it('globs follow Go filepath.Match: * and ? stay within a path segment', () => {
    expect(compileGlob('*.txt')('a.txt')).toBe(true);
    expect(compileGlob('*.txt')('d/a.txt')).toBe(false);
    expect(compileGlob('d/[ab].txt')('d/b.txt')).toBe(true);
    expect(compileGlob('d/[!ab].txt')('d/b.txt')).toBe(false);
  });

  it('a class ends where the bracket check says it ends: \\] inside is a member (one rule)', () => {
    const m = compileGlob('a[\\]x]b');
    expect([m('a]b'), m('axb'), m('a\\b'), m('ab')]).toEqual([true, true, false, false]);
    expect(compileGlob('[]]')(']')).toBe(true);
    expect(compileGlob('[!]]')(']')).toBe(false);
    expect(compileGlob('[!]]')('x')).toBe(true);
    expect(() => compileGlob('[\\]')).toThrow(expect.objectContaining({ code: 'E_COPY_SOURCE' }));
  });

  it('refuses .. and symlinks that leave the context', async () => {
    await write(['in.txt']);
    await fsp.symlink('/etc', path.join(dir, 'out'));
    await fsp.symlink('in.txt', path.join(dir, 'ok'));
    const ctx = await BuildContext.open(dir, new FileHashCache());
    await expect(ctx.select('../x')).rejects.toMatchObject({ code: 'E_CONTEXT_ESCAPE' });
    await expect(ctx.select('out')).rejects.toMatchObject({ code: 'E_CONTEXT_ESCAPE' });
    expect((await ctx.select('ok')).roots[0]!.type).toBe('file');
    expect((await ctx.select('/in.txt')).roots[0]!.rel).toBe('in.txt');
  });

  it('escapes vs missing is decided in-root: a link out of the context is not followed on the host', async () => {
    await write(['in.txt']);
    // outside/hop leads back into the context: only a host lookup outside would see that
    const outside = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-ctx-out-'));
    try {
      await fsp.symlink(path.join(dir, 'in.txt'), path.join(outside, 'hop'));
      await fsp.symlink(path.join(outside, 'hop'), path.join(dir, 'out'));
      await fsp.symlink('gone', path.join(dir, 'dangling'));
      const ctx = await BuildContext.open(dir, new FileHashCache());
      await expect(ctx.select('out')).rejects.toMatchObject({ code: 'E_CONTEXT_ESCAPE' });
      await expect(ctx.select('dangling')).rejects.toMatchObject({ code: 'E_COPY_SOURCE' });
    } finally {
      await fsp.rm(outside, { recursive: true, force: true });
    }
  });

  it('a dangling link says what BuildKit says, "/target": not found; only a link out of the context is E_CONTEXT_ESCAPE', async () => {
    await write(['sub/in.txt']);
    await fsp.symlink('/sub', path.join(dir, 'abs')); // absolute, inside the context (BuildKit)
    await fsp.symlink('gone', path.join(dir, 'sub', 'dangling'));
    await fsp.symlink('/etc/passwd', path.join(dir, 'out'));
    const ctx = await BuildContext.open(dir, new FileHashCache());
    // through an absolute link that resolved inside: a dangling link in the context, not an escape
    await expect(ctx.select('abs/dangling')).rejects.toMatchObject({
      code: 'E_COPY_SOURCE',
      message: expect.stringContaining('COPY source "abs/dangling": "/sub/gone": not found in the build context'),
    });
    expect((await ctx.select('abs/in.txt')).roots[0]!.content).toBe('sub/in.txt');
    const e = await ctx.select('out').catch((x: Error) => x);
    expect(e).toMatchObject({ code: 'E_CONTEXT_ESCAPE', message: expect.stringContaining('"/etc/passwd": not found') });
    expect((e as Error).message).toContain('points to "/etc/passwd", outside the build context');
    expect((e as Error).message).not.toContain('leaves');
  });

  it('a top-level symlink is resolved inside the context, as bind mounts and BuildKit do', async () => {
    await write(['etc/conf', 'in.txt']);
    await fsp.symlink('/etc/conf', path.join(dir, 'abs')); // means <context>/etc/conf
    await fsp.symlink('../../in.txt', path.join(dir, 'up')); // .. stops at the context root
    const ctx = await BuildContext.open(dir, new FileHashCache());
    const abs = (await ctx.select('abs')).roots[0]!;
    expect([abs.rel, abs.abs, abs.type]).toEqual(['abs', path.join(dir, 'etc/conf'), 'file']);
    expect((await ctx.select('up')).roots[0]!.abs).toBe(path.join(dir, 'in.txt'));
  });

  it('a symlink at the top, on the way or matched by a wildcard is followed, and its target is what the checksum reads', async () => {
    await write(['d/a', 'd/s/b']);
    await fsp.symlink('d/', path.join(dir, 'link'));
    await fsp.symlink('/d/s', path.join(dir, 'mid'));
    const ctx = await BuildContext.open(dir, new FileHashCache());
    const pick = async (p: string) => (await ctx.select(p)).roots.map((r) => [r.rel, r.content, r.type]);
    expect(await pick('link')).toEqual([['link', 'd', 'dir']]);
    expect(await pick('link/s/b')).toEqual([['link/s/b', 'd/s/b', 'file']]);
    expect(await pick('mid/b')).toEqual([['mid/b', 'd/s/b', 'file']]);
    expect(await pick('li*')).toEqual([['link', 'd', 'dir']]);
    expect(await pick('link/*')).toEqual([
      ['link/a', 'd/a', 'file'],
      ['link/s', 'd/s', 'dir'],
    ]);
    const sum = async () => {
      const c = await BuildContext.open(dir, new FileHashCache());
      const { digest, files } = await c.checksum([await c.select('link')]);
      return { digest, paths: [...files.entries()].map(([p]) => p) };
    };
    const s0 = await sum();
    expect(s0.paths).toEqual(['d/a', 'd/s', 'd/s/b', 'link']);
    await fsp.writeFile(path.join(dir, 'd/s/b'), 'changed');
    expect((await sum()).digest).not.toBe(s0.digest);
  });

  it('the checksum changes with content and mode, not with mtime alone', async () => {
    await write(['d/a', 'd/b']);
    const sum = async () => {
      const ctx = await BuildContext.open(dir, new FileHashCache());
      return (await ctx.checksum([await ctx.select('d')])).digest;
    };
    const s0 = await sum();
    await fsp.utimes(path.join(dir, 'd/a'), new Date(0), new Date(0));
    expect(await sum()).toBe(s0);
    await fsp.chmod(path.join(dir, 'd/a'), 0o755);
    const s1 = await sum();
    expect(s1).not.toBe(s0);
    await fsp.writeFile(path.join(dir, 'd/b'), 'changed');
    expect(await sum()).not.toBe(s1);
  });

  it('a file named __proto__ at the context root is part of the checksum (a plain record dropped it)', async () => {
    await write(['__proto__']);
    const sum = async () => {
      const ctx = await BuildContext.open(dir, new FileHashCache());
      return (await ctx.checksum([await ctx.select('.')])).digest;
    };
    const s0 = await sum();
    await fsp.writeFile(path.join(dir, '__proto__'), 'changed');
    expect(await sum()).not.toBe(s0);
  });
});

describe('FileHashCache in a long-lived process', () => {
  it('reuses the loaded cache while its file is the one it wrote; reloads when someone else rewrote it', async () => {
    await write(['a.txt']);
    const file = path.join(dir, 'cache', 'filehash.bin');
    const first = await FileHashCache.load(file);
    const st = await fsp.lstat(path.join(dir, 'a.txt'));
    const h = await first.hash(dir, 'a.txt', st);
    await first.save();
    const second = await FileHashCache.load(file);
    expect(second).toBe(first); // no re-parse
    expect(second.peek(dir, 'a.txt', st)).toBe(h);
    // Another process replaces the file (new inode): loaded afresh, with its content.
    await fsp.writeFile(`${file}.other`, JSON.stringify({ '/elsewhere': { size: 1, mtimeMs: 1, ino: 1, hash: 'x' } }));
    await fsp.rename(`${file}.other`, file);
    const third = await FileHashCache.load(file);
    expect(third).not.toBe(first);
    expect(third.peek(dir, 'a.txt', st)).toBeUndefined();
  });
});
