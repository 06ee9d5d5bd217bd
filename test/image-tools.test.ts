/**
 * `vbuild history` and `vbuild diff` on images built here, checked against numbers this test
 * reads itself: layer sizes from `tar -tv` of the layer blobs, and the changes from `tar -tv` of
 * the top layer with umoci's unpack of the older image saying what existed before.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { load, save } from '@vlab/image';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, freshStore, makeContext, removeStore, umociUnpack } from './helpers.ts';
import { runCli } from './export-helpers.ts';

let root: string;

beforeAll(async () => {
  root = await freshStore();
  const one = await makeContext({
    Dockerfile: 'FROM busybox\nRUN mkdir /app && echo one > /app/a && echo two > /app/b && echo x > /gone\nENV X=1\n',
  });
  const two = await makeContext({
    Dockerfile: [
      'FROM t:1',
      'RUN echo changed-and-longer > /app/a && rm /gone && echo new > /app/c && mkdir /newdir \\',
      ' && echo n > /newdir/f && chmod 600 /app/b',
      'LABEL k=v',
      '',
    ].join('\n'),
  });
  for (const [ctx, tag] of [
    [one, 't:1'],
    [two, 't:2'],
  ]) {
    const b = await runCli(root, ['build', '-q', '-t', tag!, ctx!]);
    if (b.code !== 0) throw new Error(b.stderr);
    await exec('rm', ['-rf', ctx!]);
  }
}, 90_000);
afterAll(async () => {
  await removeStore(root);
});

interface TarLine {
  type: string;
  mode: string;
  size: number;
  name: string;
}

/** `tar -tv` of a layer blob, parsed: type letter, mode string, size, name. */
async function tarList(file: string): Promise<TarLine[]> {
  const { stdout } = await exec('tar', ['--numeric-owner', '-tvf', file], { maxBuffer: 64 << 20 });
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [perm, , size, , , ...rest] = l.split(/\s+/);
      return {
        type: perm![0]!,
        mode: perm!.slice(1),
        size: Number(size),
        name: rest.join(' ').split(' -> ')[0]!.split(' link to ')[0]!.replace(/\/$/, ''),
      };
    });
}

const manifestOf = async (tag: string) => {
  const inspect = JSON.parse((await runCli(root, ['inspect', tag])).stdout) as { Digest: string };
  const m = JSON.parse(fs.readFileSync(path.join(root, 'blobs/sha256', inspect.Digest.slice(7)), 'utf8')) as {
    layers: { digest: string }[];
  };
  return m.layers.map((l) => path.join(root, 'blobs/sha256', l.digest.slice(7)));
};

describe('image tools', () => {
  it('history: a row per history entry, newest first; layer sizes are the file bytes tar -tv lists', async () => {
    const r = await runCli(root, ['history', '--format', 'json', 't:2']);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as { createdBy: string; size: number; emptyLayer: boolean; id: string }[];
    const layers = await manifestOf('t:2');
    const want: number[] = [];
    for (const l of layers) want.push((await tarList(l)).filter((e) => e.type === '-').reduce((n, e) => n + e.size, 0));
    const nonEmpty = rows.filter((x) => !x.emptyLayer).reverse();
    expect(nonEmpty.map((x) => x.size)).toEqual(want);
    expect(want[2]).toBe('changed-and-longer\n'.length + 'new\n'.length + 'n\n'.length + 'two\n'.length);
    expect(rows.map((x) => [x.createdBy.split(' ')[0], x.emptyLayer])).toEqual([
      ['LABEL', true],
      ['RUN', false],
      ['ENV', true],
      ['RUN', false],
      ['vbuild', false],
    ]);
    expect(rows[0]!.id).toMatch(/^sha256:/);
    expect(rows.slice(1).every((x) => x.id === '<missing>')).toBe(true);
    const table = await runCli(root, ['history', 't:2']);
    expect(table.stdout.split('\n')[0]).toMatch(/^IMAGE +CREATED +CREATED BY +SIZE +COMMENT$/);
    expect(table.stdout).toMatch(/<missing> .* RUN \/bin\/sh -c echo changed-and-longer .* 29B/);
  });

  it('diff: A/C/D with sizes and modes, as the top layer and the older tree say', async () => {
    const r = await runCli(root, ['diff', '--format', 'json', 't:1', 't:2']);
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as { kind: string; path: string; mode: string; size: number }[];
    const before = await umociUnpack(root, 't:1');
    try {
      const top = (await tarList((await manifestOf('t:2')).at(-1)!)).filter((e) => e.name && e.name !== '.');
      const want = top.map((e) => {
        const base = path.basename(e.name);
        if (base.startsWith('.wh.')) return { kind: 'D', path: `/${path.join(path.dirname(e.name), base.slice(4))}` };
        return { kind: fs.existsSync(path.join(before, e.name)) ? 'C' : 'A', path: `/${e.name}` };
      });
      const sort = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : 1);
      // A directory the older tree has is in the top layer whenever a file under it changed (copy-up);
      // it differs only if its own metadata did, which the layer listing alone cannot say: leave those out.
      const oldDir = (c: { path: string }) =>
        fs.statSync(path.join(before, c.path), { throwIfNoEntry: false })?.isDirectory() ?? false;
      const files = (l: { kind: string; path: string }[]) => l.filter((c) => !oldDir(c)).sort(sort);
      expect(files(got.map(({ kind, path: p }) => ({ kind, path: p })))).toEqual(files(want));
      expect(got.find((c) => c.path === '/app/b')).toMatchObject({ kind: 'C', mode: '0600', size: 4 });
      expect(got.find((c) => c.path === '/app/a')).toMatchObject({ kind: 'C', size: 19 });
      expect(got.find((c) => c.path === '/gone')).toMatchObject({ kind: 'D' });
      expect(got.find((c) => c.path === '/newdir/f')).toMatchObject({ kind: 'A', size: 2 });
    } finally {
      await exec('rm', ['-rf', path.dirname(before)]);
    }
    const plain = await runCli(root, ['diff', 't:1', 't:2']);
    expect(plain.stdout).toMatch(/^D f0644 +2 \/gone$/m);
    expect((await runCli(root, ['diff', 't:1', 't:1'])).stdout).toBe('');
  });

  it('diff and layers read gzip-stored layers: images loaded from gzip-layer archives give the same answers', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vlab-gzdiff-'));
    const other = path.join(tmp, 'store');
    try {
      for (const t of ['1', '2']) {
        const file = path.join(tmp, `t${t}.tar`);
        await save(`t:${t}`, file, { root, format: 'oci', compression: 'gzip' });
        await load(file, { root: other, tag: `g:${t}` });
      }
      const inspect = JSON.parse((await runCli(other, ['inspect', 'g:2'])).stdout) as { Digest: string };
      const m = JSON.parse(fs.readFileSync(path.join(other, 'blobs/sha256', inspect.Digest.slice(7)), 'utf8')) as {
        layers: { mediaType: string }[];
      };
      expect(m.layers.map((x) => x.mediaType)).toEqual(
        m.layers.map(() => 'application/vnd.oci.image.layer.v1.tar+gzip'),
      );
      const gz = await runCli(other, ['diff', '--format', 'json', 'g:1', 'g:2']);
      expect(gz.code, gz.stderr).toBe(0);
      expect(JSON.parse(gz.stdout)).toEqual(
        JSON.parse((await runCli(root, ['diff', '--format', 'json', 't:1', 't:2'])).stdout),
      );
      const changes = (r: { stdout: string }) =>
        (JSON.parse(r.stdout) as { layers: { changes: unknown[] }[] }).layers.map((x) => x.changes);
      const lg = await runCli(other, ['layers', '--format', 'json', 'g:2']);
      expect(lg.code, lg.stderr).toBe(0);
      expect(changes(lg)).toEqual(changes(await runCli(root, ['layers', '--format', 'json', 't:2'])));
    } finally {
      await exec('rm', ['-rf', tmp]);
    }
  });

  it('diff: a file rewritten with the same size and the same whole-second mtime is C; the same bytes again are not', async () => {
    const touch = 'touch -t 201701010000 /f';
    const ctx = await makeContext({
      'u1.Dockerfile': `FROM busybox\nRUN echo one > /f && ${touch}\n`,
      'u2.Dockerfile': `FROM u:1\nRUN echo ONE > /f && ${touch}\n`,
      'u3.Dockerfile': `FROM u:1\nRUN echo one > /f && ${touch}\n`,
    });
    try {
      for (const t of ['1', '2', '3']) {
        const b = await runCli(root, ['build', '-q', '-t', `u:${t}`, '-f', path.join(ctx, `u${t}.Dockerfile`), ctx]);
        expect(b.code, b.stderr).toBe(0);
      }
      const files = async (a: string, b: string) => {
        const r = await runCli(root, ['diff', '--format', 'json', a, b]);
        expect(r.code, r.stderr).toBe(0);
        return (JSON.parse(r.stdout) as { kind: string; path: string; type: string }[]).filter((c) => c.type === 'f');
      };
      expect(await files('u:1', 'u:2')).toMatchObject([{ kind: 'C', path: '/f', type: 'f' }]);
      expect(await files('u:1', 'u:3')).toEqual([]);
    } finally {
      await exec('rm', ['-rf', ctx]);
    }
  });
});
