/**
 * `vbuild rebase IMAGE --from OLD --to NEW`: a file patched in the base reaches the image without
 * running its RUN again (its own layer blobs are reused, the store gains only a config and a
 * manifest); Env follows the new base where the image inherited it; the tree equals a rebuild of
 * the image's Dockerfile on the new base; bases that do not match are refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, freshStore, makeContext, removeStore } from './helpers.ts';
import { runCli, tempDir, treeListing } from './export-helpers.ts';

let root: string;
let out: string;
const APP = 'FROM base:1\nRUN echo app > /app && cat /etc/base-version > /app-saw\nENV APP=1\nCMD ["cat", "/app"]\n';

async function build(tag: string, dockerfile: string): Promise<void> {
  const ctx = await makeContext({ Dockerfile: dockerfile });
  const b = await runCli(root, ['build', '-q', '-t', tag, ctx]);
  await exec('rm', ['-rf', ctx]);
  if (b.code !== 0) throw new Error(b.stderr);
}

beforeAll(async () => {
  root = await freshStore();
  out = await tempDir('vlab-rebase-');
  await build('base:1', 'FROM busybox\nRUN echo v1 > /etc/base-version\nENV BASE=1 SHARED=old\n');
  await build('base:2', 'FROM busybox\nRUN echo v2-patched > /etc/base-version\nENV BASE=2 SHARED=new\n');
  await build('app:1', APP);
}, 90_000);
afterAll(async () => {
  await removeStore(root);
  await exec('rm', ['-rf', out]);
});

const inspect = async (tag: string) =>
  JSON.parse((await runCli(root, ['inspect', tag])).stdout) as {
    config: { Env: string[]; Cmd: string[] };
    rootfs: { diff_ids: string[] };
    history: { created_by: string }[];
  };
const blobCount = () => fs.readdirSync(path.join(root, 'blobs/sha256')).length;

describe('rebase', () => {
  it('the patched base file and the image own files, no layer rebuilt; same tree as a rebuild on the new base', async () => {
    const blobs = blobCount();
    const r = await runCli(root, ['rebase', 'app:1', '--from', 'base:1', '--to', 'base:2', '-t', 'app:2']);
    expect(r.code, r.stderr).toBe(0);
    expect(blobCount()).toBe(blobs + 2); // a config and a manifest, no layer
    const [a1, a2, b1, b2] = await Promise.all(['app:1', 'app:2', 'base:1', 'base:2'].map(inspect));
    const own = a1!.rootfs.diff_ids.slice(b1!.rootfs.diff_ids.length);
    expect(a2!.rootfs.diff_ids).toEqual([...b2!.rootfs.diff_ids, ...own]);
    expect(a2!.config.Env).toEqual([
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'BASE=2',
      'SHARED=new',
      'APP=1',
    ]);
    expect(a2!.config.Cmd).toEqual(['cat', '/app']);
    expect(a2!.history.map((h) => h.created_by)).toEqual([
      ...b2!.history.map((h) => h.created_by),
      ...a1!.history.slice(b1!.history.length).map((h) => h.created_by),
    ]);
    const rebased = path.join(out, 'rebased');
    expect((await runCli(root, ['save', '--format', 'rootfs-dir', '-o', rebased, 'app:2'])).code).toBe(0);
    expect(fs.readFileSync(path.join(rebased, 'etc/base-version'), 'utf8')).toBe('v2-patched\n');
    expect(fs.readFileSync(path.join(rebased, 'app'), 'utf8')).toBe('app\n');
    // The RUN did not run again: what it saw of the base is still the old version.
    expect(fs.readFileSync(path.join(rebased, 'app-saw'), 'utf8')).toBe('v1\n');
    await build('app:rebuilt', APP.replace('FROM base:1', 'FROM base:2'));
    const rebuilt = path.join(out, 'rebuilt');
    expect((await runCli(root, ['save', '--format', 'rootfs-dir', '-o', rebuilt, 'app:rebuilt'])).code).toBe(0);
    fs.writeFileSync(path.join(rebuilt, 'app-saw'), 'v1\n'); // the one file a rebuild sees differently, by design
    expect(treeListing(rebased)).toEqual(treeListing(rebuilt));
  });

  it('refuses when the image is not built on --from', async () => {
    const r = await runCli(root, ['rebase', 'app:1', '--from', 'base:2', '--to', 'base:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/app:1 is not built on base:2.*E_REBASE_MISMATCH/s);
  });
});
