/**
 * COPY has two paths: straight into a layer tar (no mount) and through a mounted snapshot. Both
 * must give the same image filesystem; umoci unpacks each and the trees are compared.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '@vlab/image';
import { exec, freshStore, makeContext, removeStore, umociUnpack } from './helpers.ts';

let root: string;
beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  await removeStore(root);
  delete process.env.VLAB_NO_FAST_COPY;
});

/** Every path with type, mode, owner, size, link count, link target and content digest (mtimes of dirs the two paths touch differently are left out). */
async function tree(rootfs: string): Promise<string> {
  const { stdout } = await exec('sh', [
    '-c',
    `cd ${rootfs} && find . -printf '%p %y %m %U:%G %s %n %l\\n' | sort && find . -type f -exec sha256sum {} + | sort -k2`,
  ]);
  return stdout;
}

let n = 0;
async function both(
  dockerfile: string,
  files: Record<string, string>,
  prep?: (ctx: string) => Promise<void>,
): Promise<[string, string]> {
  const ctx = await makeContext({ Dockerfile: dockerfile, ...files });
  await prep?.(ctx);
  const out: string[] = [];
  for (const slow of ['1', '0']) {
    process.env.VLAB_NO_FAST_COPY = slow;
    const tag = `parity${++n}:latest`;
    await build({ context: ctx, root, tags: [tag], noCache: true });
    out.push(await tree(await umociUnpack(root, tag)));
  }
  await fsp.rm(ctx, { recursive: true });
  return out as [string, string];
}

describe('COPY fast path equals the mounted path', () => {
  it.each([
    ['a file into a new directory', 'FROM busybox\nCOPY a.txt /new/dir/\n'],
    ['a directory over an existing one', 'FROM busybox\nCOPY etc/ /etc/\n'],
    ['a file renamed', 'FROM busybox\nCOPY a.txt /renamed.txt\n'],
    ['--chown by name and --chmod', 'FROM busybox\nCOPY --chown=nobody:nogroup --chmod=600 a.txt etc /x/\n'],
    ['globs and a workdir-relative dest', 'FROM busybox\nWORKDIR /w\nCOPY *.txt sub/\n'],
    ['the whole context with a symlink, --exclude', 'FROM busybox\nCOPY --exclude=*.md . /ctx/\n'],
    ['a heredoc', 'FROM busybox\nCOPY <<EOF /etc/motd\nhi\nEOF\n'],
  ])('%s', async (_name, df) => {
    const [slow, fast] = await both(
      df,
      { 'a.txt': 'A', 'b.txt': 'B', 'etc/extra.conf': 'x=1', 'doc.md': 'd' },
      async (ctx) => {
        await fsp.symlink('a.txt', path.join(ctx, 'link'));
      },
    );
    expect(fast).toBe(slow);
  });
});

describe('COPY keeps what Docker keeps, on both paths', () => {
  it('hard links between context files stay hard links (BuildKit keeps links within one COPY)', async () => {
    const [slow, fast] = await both(
      'FROM busybox\nCOPY . /h/\nCOPY a.txt same.txt /one/\n',
      { 'a.txt': 'A' },
      async (ctx) => {
        await fsp.link(path.join(ctx, 'a.txt'), path.join(ctx, 'same.txt'));
      },
    );
    for (const t of [slow, fast]) {
      expect(t).toMatch(/^\.\/h\/a\.txt f 644 0:0 1 2 $/m);
      expect(t).toMatch(/^\.\/h\/same\.txt f 644 0:0 1 2 $/m);
      expect(t).toMatch(/^\.\/one\/same\.txt f 644 0:0 1 2 $/m);
    }
    expect(fast).toBe(slow);
  });

  it('--chown with ids over 262143 (6 octal digits) keeps them exactly', async () => {
    const [slow, fast] = await both('FROM busybox\nCOPY --chown=300000:2097152 a.txt /big/\n', { 'a.txt': 'A' });
    expect(slow).toMatch(/^\.\/big\/a\.txt f 644 300000:2097152 1 1 $/m);
    expect(fast).toBe(slow);
  });
});
