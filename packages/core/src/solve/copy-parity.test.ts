/**
 * One COPY, two outputs: packed straight into a layer tar, or written into a mounted snapshot and
 * diffed. Every case below is built both ways (VLAB_NO_FAST_COPY=1 forces the mounted output) and
 * the layer tars must be the same bytes, directory mtimes included. The clock is fixed (Date only)
 * so the "now" a COPY gives the directories it creates or writes into is the same in both builds.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { build, openEngine } from '../api.ts';

const exec = promisify(execFile);
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('copy-parity: skipped, the mounted output needs root (overlay mounts)');

/** A base stage: users for --chown by name, existing nested dirs, a symlink on a destination path. */
const BASE = `FROM scratch AS base
COPY base/ /
`;
const files: Record<string, string> = {
  'base/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n',
  'base/etc/group': 'root:x:0:\napp:x:2345:\n',
  'base/srv/data/old.txt': 'old',
  'base/opt/keep': 'keep',
  'a.txt': 'A',
  'b.txt': 'BB',
  'c.md': 'C',
  'dir/one': '1',
  'dir/sub/two': '22',
  'dir/sub/skip.log': 'ignored by .dockerignore',
  'dir/sub/drop.tmp': 'dropped by --exclude',
  'tree/data/deeper/new.txt': 'new',
  'tree/data/old.txt': 'replaced',
  'links/x': 'linked',
  'sym/target': 't',
  'over/keep/inner': 'a dir where the image has a file',
  'swap/data': 'a file where the image has a dir',
  '.dockerignore': '**/*.log\n',
};

async function prepare(ctx: string): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await fsp.mkdir(path.dirname(path.join(ctx, name)), { recursive: true });
    await fsp.writeFile(path.join(ctx, name), content);
  }
  await fsp.chmod(path.join(ctx, 'b.txt'), 0o755);
  await fsp.chmod(path.join(ctx, 'dir/sub'), 0o750);
  await fsp.link(path.join(ctx, 'links/x'), path.join(ctx, 'links/y'));
  await fsp.link(path.join(ctx, 'a.txt'), path.join(ctx, 'same.txt'));
  await fsp.symlink('target', path.join(ctx, 'sym/rel'));
  await fsp.symlink('/etc/passwd', path.join(ctx, 'sym/abs'));
  await fsp.symlink('missing', path.join(ctx, 'sym/dangling'));
  await fsp.symlink('/srv', path.join(ctx, 'base/app'));
  await fsp.mkdir(path.join(ctx, 'empty'));
  await fsp.mkdir(path.join(ctx, 'dir/hollow'));
  // Every context mtime fixed and distinct from the build's clock: a kept mtime shows as such.
  let t = Date.UTC(2020, 0, 1) / 1000;
  const stamp = async (p: string): Promise<void> => {
    const st = await fsp.lstat(p);
    if (st.isDirectory()) for (const n of await fsp.readdir(p)) await stamp(path.join(p, n));
    await fsp.lutimes(p, t, (t += 3600));
  };
  await stamp(ctx);
}

/** name, steps after `FROM base`, and what the layer must show (tar -tv) beyond parity. */
const cases: [string, string, RegExp?][] = [
  ['from scratch: a tree with users, nested dirs and a symlink (the base layer itself)', ''],
  ['a single file', 'COPY a.txt /a.txt'],
  ['a file into a new nested dir (dest with slash)', 'COPY a.txt /new/dir/'],
  ['dest without slash: an existing dir', 'COPY b.txt /srv'],
  ['dest without slash: a new file name in an existing dir', 'COPY a.txt /srv/data/renamed'],
  ['a directory (its contents)', 'COPY dir /d/'],
  ['a directory into nested existing dirs', 'COPY tree/ /srv/'],
  ['globs', 'COPY *.txt /g/'],
  ['--chown by name', 'COPY --chown=app:app a.txt dir /o/'],
  ['--chown uid:gid over 262143', 'COPY --chown=300000:2097152 a.txt dir /big/', / 300000\/2097152 .* big\/a\.txt$/m],
  ['--chmod', 'COPY --chmod=640 a.txt dir /m/'],
  ['hard links', 'COPY links/ /l/\nCOPY a.txt same.txt /one/', /^h.* one\/same\.txt link to one\/a\.txt$/m],
  ['symlinks', 'COPY sym/ /s/'],
  ['.dockerignore and --exclude', 'COPY --exclude=*.tmp . /ctx/'],
  ['--parents', 'COPY --parents dir/sub/two a.txt /p/'],
  [
    'a dir over a file of the image (opaque), a file over a dir',
    'COPY over/ /opt/\nCOPY swap/ /srv/',
    /^-.* opt\/keep\/\.wh\.\.wh\.\.opq$/m,
  ],
  ['empty dirs', 'COPY empty /e/\nCOPY dir/hollow /h'],
  ['a symlink on the destination path', 'COPY a.txt /app/'],
  ['a workdir-relative dest', 'WORKDIR /srv/data\nCOPY a.txt rel/'],
  ['a heredoc', 'COPY <<EOF /etc/motd\nhi\nEOF'],
  ['COPY --from a stage', 'COPY --from=base /srv /from/\nCOPY --from=base /etc/pass* /pw/'],
];

let root: string;
let ctx: string;
beforeAll(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-parity-store-'));
  ctx = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-parity-ctx-'));
  await prepare(ctx);
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date(Date.UTC(2023, 5, 1, 12, 0, 0)));
});
afterAll(async () => {
  vi.useRealTimers();
  delete process.env.VLAB_NO_FAST_COPY;
  await exec('rm', ['-rf', root, ctx]);
});

let n = 0;
/** The image's layer tars, built with the pack output ('0') or the mounted one ('1'). */
async function layers(df: string, mounted: '0' | '1'): Promise<Buffer[]> {
  process.env.VLAB_NO_FAST_COPY = mounted;
  const r = await build({ context: ctx, dockerfile: { text: df }, root, tags: [`parity${++n}:x`], noCache: true });
  const { store } = await openEngine(root);
  return Promise.all(r.manifest.layers.map((l) => fsp.readFile(store.blobs.path(l.digest))));
}

/** tar's own listing, for a readable failure. */
async function listing(tar: Buffer): Promise<string> {
  const file = path.join(root, `listing-${++n}.tar`);
  fs.writeFileSync(file, tar);
  const { stdout } = await exec('tar', ['--numeric-owner', '--full-time', '-tvf', file]);
  return stdout;
}

describe.skipIf(!isRoot)('COPY: the pack output and the mounted output give the same layer bytes', () => {
  it.each(cases)('%s', async (_name, step, shows) => {
    const df = `${BASE}FROM base\n${step}\n`;
    // the base layer is its own row: the others compare only what their step adds
    const packed = (await layers(df, '0')).slice(step ? 1 : 0);
    const mounted = (await layers(df, '1')).slice(step ? 1 : 0);
    expect(packed.length).toBe(mounted.length);
    if (shows) expect((await Promise.all(packed.map(listing))).join('')).toMatch(shows);
    for (const [i, p] of packed.entries()) {
      if (p.equals(mounted[i]!)) continue;
      expect({ layer: i, packed: await listing(p) }).toEqual({ layer: i, packed: await listing(mounted[i]!) });
      expect(p.equals(mounted[i]!), `layer ${i}: same listing, other bytes`).toBe(true);
    }
  });
});
