/**
 * Hostile layer tars through the builder (issue 10, hole 1): a layer that records metadata, nodes
 * and xattrs under `p/` and then plants `p -> <scratch>` reaches apply through `ADD x.tar` and
 * through a base image (`FROM` of a docker-archive named context). The scratch dir's listing,
 * modes, owners, mtimes and xattrs must stay as they were; a config whose diff_id lies is refused
 * before its snapshot is committed.
 */
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { build } from '@vlab/image';
import {
  bareEntry,
  encodeHeader,
  END_OF_ARCHIVE,
  padding,
  type TarEntry,
} from '../packages/overlay/src/layer/tar-format.ts';
import { freshStore, makeContext, removeStore, fsckProblems } from './helpers.ts';

let root: string;
let scratch: string;
beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  await removeStore(root);
});
beforeEach(async () => {
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-scratch-'));
  await fsp.mkdir(path.join(scratch, 'd'), { mode: 0o750 });
  await fsp.writeFile(path.join(scratch, 'sentinel'), 'keep');
  await fsp.utimes(path.join(scratch, 'd'), 1000, 1000);
});
afterEach(async () => {
  await fsp.rm(scratch, { recursive: true, force: true });
});

/** Listing, mode, owner, mtime of everything in the scratch dir (nothing is opened). */
async function scratchState(): Promise<string[]> {
  const out: string[] = [];
  for (const n of (await fsp.readdir(scratch)).sort()) {
    const st = await fsp.lstat(path.join(scratch, n));
    out.push(`${n} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs}`);
  }
  return out;
}

const entry = (h: Partial<TarEntry> & { name: string }, body: Buffer = Buffer.alloc(0)): Buffer =>
  Buffer.concat([
    encodeHeader({ ...bareEntry(h.name, 'file', 0o644), size: body.length, ...h }),
    body,
    Buffer.alloc(padding(body.length)),
  ]);

/** The hostile layer: metadata, a fifo over the marker, an xattr and a whiteout under p/, then p -> scratch. */
function hostileLayer(): Buffer {
  return Buffer.concat([
    entry({ name: 'p/', type: 'dir', mode: 0o755 }),
    entry({
      name: 'p/d/',
      type: 'dir',
      mode: 0o6777,
      uid: 4242,
      gid: 4242,
      mtime: 12345,
      xattrs: new Map([['user.vlab', Buffer.from('evil')]]),
    }),
    entry({ name: 'p/sentinel', type: 'fifo' }),
    entry({ name: 'p/.wh.gone' }),
    entry({ name: 'p', type: 'symlink', linkname: scratch }),
    entry({ name: 'ok', type: 'file' }, Buffer.from('fine')),
    END_OF_ARCHIVE,
  ]);
}

/** A docker-archive (docker save layout) with one layer; `diffId` overrides the true one. */
function dockerArchive(layer: Buffer, diffId?: string): Buffer {
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      history: [],
      rootfs: { type: 'layers', diff_ids: [diffId ?? `sha256:${sha(layer)}`] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify([{ Config: 'config.json', RepoTags: ['evil:1'], Layers: ['layer.tar'] }]),
  );
  return Buffer.concat([
    entry({ name: 'manifest.json' }, manifest),
    entry({ name: 'config.json' }, config),
    entry({ name: 'layer.tar' }, layer),
    END_OF_ARCHIVE,
  ]);
}

async function tryBuild(dockerfile: string, files: Record<string, Buffer>, buildContexts?: Record<string, string>) {
  const ctx = await makeContext({ Dockerfile: dockerfile, f: 'x' });
  for (const [n, b] of Object.entries(files)) await fsp.writeFile(path.join(ctx, n), b);
  try {
    await build({ context: ctx, tags: ['hostile-layer:latest'], root, buildContexts });
    return undefined;
  } catch (e) {
    return e as { code: string; message: string };
  } finally {
    await fsp.rm(ctx, { recursive: true, force: true });
  }
}

describe('a layer that plants a symlink after recording work under it (hole 1)', () => {
  it.each(['0', '1'])('ADD x.tar (VLAB_NO_FAST_COPY=%s) leaves the scratch dir as it was', async (noFast) => {
    const before = await scratchState();
    process.env.VLAB_NO_FAST_COPY = noFast;
    try {
      const err = await tryBuild('FROM busybox\nADD evil.tar /x/\n', { 'evil.tar': hostileLayer() });
      expect(err, String(err?.message)).toBeUndefined();
    } finally {
      delete process.env.VLAB_NO_FAST_COPY;
    }
    expect(await scratchState()).toEqual(before);
    expect(await fsp.readFile(path.join(scratch, 'sentinel'), 'utf8')).toBe('keep');
  });

  it('FROM a docker-archive whose layer does it leaves the scratch dir as it was', async () => {
    const before = await scratchState();
    const archive = path.join(scratch, '..', `${path.basename(scratch)}.tar`);
    await fsp.writeFile(archive, dockerArchive(hostileLayer()));
    process.env.VLAB_NO_FAST_COPY = '1';
    try {
      const err = await tryBuild('FROM evil\nCOPY f /f\n', {}, { evil: `docker-archive:${archive}` });
      expect(err, String(err?.message)).toBeUndefined();
    } finally {
      delete process.env.VLAB_NO_FAST_COPY;
      await fsp.rm(archive, { force: true });
    }
    expect(await scratchState()).toEqual(before);
  });

  it('a base layer whose diff_id in the config is wrong is refused (E_DIGEST_MISMATCH at load, else E_LAYER_DIGEST) and not committed', async () => {
    const archive = path.join(scratch, '..', `${path.basename(scratch)}-bad.tar`);
    await fsp.writeFile(archive, dockerArchive(entry({ name: 'a' }, Buffer.from('a')), `sha256:${'1'.repeat(64)}`));
    process.env.VLAB_NO_FAST_COPY = '1';
    try {
      const err = await tryBuild('FROM evil\nCOPY f /f\n', {}, { evil: `docker-archive:${archive}` });
      // the archive loader hashes each layer against its diff_id before naming anything
      // (E_DIGEST_MISMATCH); the unpacker's own check (E_LAYER_DIGEST) is the second wall
      expect(['E_DIGEST_MISMATCH', 'E_LAYER_DIGEST', 'E_LAYER_INVALID']).toContain(err?.code);
    } finally {
      delete process.env.VLAB_NO_FAST_COPY;
      await fsp.rm(archive, { force: true });
    }
    const snaps = await fsp.readdir(path.join(root, 'snapshots'), { recursive: true }).catch(() => [] as string[]);
    expect(snaps.filter((s) => s.includes('1'.repeat(64)) || /extract-/.test(s))).toEqual([]);
  });

  it('ADD of a damaged .tar.gz ends with a typed error, not a hang (held before too: a regression guard)', async () => {
    const err = await tryBuild('FROM busybox\nADD bad.tar.gz /x/\n', {
      'bad.tar.gz': Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(600, 0x55)]),
    });
    expect(['E_LAYER_INVALID', 'E_ADD_EXTRACT']).toContain(err?.code);
  });
});

describe('the store after every case above', () => {
  it('fsck is clean: nothing corrupt or dangling, nothing a refused case left behind', async () => {
    expect(await fsckProblems(root)).toEqual([]);
  });
});
