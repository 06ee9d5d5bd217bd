/**
 * The one flattening of an image: its layers applied in order to a directory, as a container
 * runtime would see the rootfs. Every export for another container system (rootfs tar/dir,
 * squashfs, LXC, OpenVZ) starts here (DESIGN: "all flatten through one function").
 *
 * Each layer blob is streamed through @vlab/overlay's `apply` with OCI whiteouts, so the rules of
 * a layer (`.wh.` files, opaque dirs, remove-then-create, hard links, xattrs, modes, owners,
 * devices as root, in-root resolution of every path) live in one place; memory stays bounded by a
 * layer's pending metadata, not its bytes. Each layer's content must hash to its diff_id.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { apply } from '@vlab/overlay';
import { VlabError } from '@vlab/errors';
import type { Store, StoredImage } from '../store/store.ts';
import { layerStream } from '../image/load.ts';
import { layersOf } from '../solve/base.ts';

export interface FlattenOptions {
  signal?: AbortSignal;
}

/** Apply every layer of `img` to `dir` (made if missing; must be empty). Its root gets mode 0755. */
export async function flattenInto(
  store: Store,
  img: StoredImage,
  dir: string,
  opts: FlattenOptions = {},
): Promise<void> {
  if (!(await store.holdImage(img)))
    throw new VlabError(
      'E_BLOB_MISSING',
      `a blob of image ${img.manifestDigest} is gone from the store: pull or build it again`,
    );
  await fsp.mkdir(dir, { recursive: true });
  if ((await fsp.readdir(dir)).length)
    throw new VlabError('E_OUTPUT', `${dir} is not empty: the flattened image goes into an empty directory`);
  await fsp.chmod(dir, 0o755);
  for (const l of layersOf(img)) {
    opts.signal?.throwIfAborted();
    const res = await apply(layerStream(store.blobs.open(l.digest), l.mediaType), dir, { whiteouts: 'oci' });
    if (res.diffId !== l.diffId)
      throw new VlabError(
        'E_LAYER_DIGEST',
        `layer ${l.digest} unpacked to diffID ${res.diffId}, but the image config says ${l.diffId}: the store is damaged (run vbuild fsck)`,
      );
  }
}

/**
 * `work` on the flattened tree of `img` in a private temp dir under the store's tmp/ (named with
 * our pid, so a crash leaves nothing fsck cannot tell apart), removed afterwards.
 */
export async function withFlattened<T>(
  store: Store,
  img: StoredImage,
  work: (rootfs: string) => Promise<T>,
  opts: FlattenOptions = {},
): Promise<T> {
  const dir = store.path('tmp', `flat-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await flattenInto(store, img, dir, opts);
    return await work(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Write `dest` atomically: `make` fills a sibling temp path, renamed over `dest` when it succeeds
 * (an existing empty directory at `dest` is replaced; anything else there is E_OUTPUT).
 */
export async function writeAtomicPath(dest: string, make: (tmp: string) => Promise<void>): Promise<void> {
  const st = await fsp.lstat(dest).catch(() => undefined);
  if (st && !(st.isDirectory() && (await fsp.readdir(dest)).length === 0))
    throw new VlabError('E_OUTPUT', `${dest} exists: remove it or choose another destination`);
  await fsp.mkdir(path.dirname(path.resolve(dest)), { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await make(tmp);
    if (st) await fsp.rmdir(dest);
    await fsp.rename(tmp, dest);
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}
