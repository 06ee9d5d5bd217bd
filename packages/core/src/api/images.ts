/**
 * The image and store operations behind `vbuild import|images|tag|rmi|load|save|inspect`: each
 * opens the store at `root` (default: defaultStoreRoot()), does one thing and returns data; the
 * CLI only formats it. `prune` and `fsck` live in layers/ (they span store, cache and snapshots).
 */
import { VlabError } from '@vlab/errors';
import { importRootfs as importInto } from '../image/import.ts';
import { loadArchive } from '../image/load.ts';
import type { ImageConfig } from '../image/types.ts';
import { layersOf } from '../solve/base.ts';
import { exportImage, OUTPUT_TYPES, type OutputType } from '../export/export.ts';
import type { LayerCompression } from '../export/compress.ts';
import { envEpoch } from '../api.ts';
import { defaultStoreRoot } from '../store/paths.ts';
import { Store, type StoredImage } from '../store/store.ts';
import { openEngine, type Engine } from './engine.ts';
import { imageUsers } from '../containers/records.ts';

export interface StoreOptions {
  /** Store root (default: $VLAB_ROOT, /var/lib/vlab as root, else $XDG_DATA_HOME/vlab). */
  root?: string;
}

/** An image as the commands name it: docker's image id (config digest) and the manifest digest. */
export interface ImageRef {
  imageId: string;
  digest: string;
}

/**
 * Run `fn` on an opened engine and release what its handle held against gc afterwards (as
 * build() does): once the call returns, its result is named, or gc's to take.
 */
async function withEngine<T>(opts: StoreOptions, fn: (e: Engine) => Promise<T>): Promise<T> {
  const engine = await openEngine(opts.root ?? defaultStoreRoot());
  try {
    return await fn(engine);
  } finally {
    await engine.store.lease.release().catch(() => undefined);
  }
}

/** withEngine for the calls that need only the store (no snapshotter is opened). */
async function withStore<T>(opts: StoreOptions, fn: (s: Store) => Promise<T>): Promise<T> {
  const store = await Store.open(opts.root ?? defaultStoreRoot());
  try {
    return await fn(store);
  } finally {
    await store.lease.release().catch(() => undefined);
  }
}

/** The image `ref` names (name[:tag], name@digest, digest or image-id prefix); E_IMAGE_NOT_FOUND if none. */
async function mustResolve(store: Store, ref: string): Promise<StoredImage> {
  const img = await store.resolve(ref);
  if (!img) throw new VlabError('E_IMAGE_NOT_FOUND', `no such image: ${ref || '(none given)'}`);
  return img;
}

const refOf = (img: StoredImage): ImageRef => ({ imageId: img.configDigest, digest: img.manifestDigest });

/**
 * `docker import`: a rootfs tarball (plain or gzip) becomes a one-layer image tagged `ref`, and
 * its layer is unpacked now (as docker does), so the first build on it does not pay for that.
 */
export async function importRootfs(tarball: string, ref: string, opts: StoreOptions = {}): Promise<ImageRef> {
  return withEngine(opts, async (engine) => {
    const img = await importInto(engine.store, tarball, ref);
    await engine.layers.ensureSnapshot(layersOf(img));
    return refOf(img);
  });
}

/**
 * `docker load -i FILE`: a docker-archive or an OCI archive (checked against its digests and
 * schemas before anything is named), unpacked now; tagged `opts.tag` when given.
 */
export async function load(archive: string, opts: StoreOptions & { tag?: string } = {}): Promise<ImageRef> {
  return withEngine(opts, async (engine) => {
    const img = await loadArchive(engine.store, archive);
    await engine.layers.ensureSnapshot(layersOf(img));
    if (opts.tag) await engine.store.tag(opts.tag, img.manifestDigest);
    return refOf(img);
  });
}

/**
 * `docker save -o DEST`: the image `ref` names as a docker-archive (default), an OCI archive, or
 * a rootfs for another container system (rootfs-tar, rootfs-dir, squashfs, lxc, openvz: see
 * export/export.ts). Times in rootfs tars and squashfs are clamped to `sourceDateEpoch`
 * (default $SOURCE_DATE_EPOCH).
 */
export async function save(
  ref: string,
  dest: string,
  opts: StoreOptions & {
    format?: OutputType;
    compression?: LayerCompression;
    sourceDateEpoch?: number;
    signal?: AbortSignal;
  } = {},
): Promise<void> {
  const format = opts.format ?? 'docker';
  if (!(OUTPUT_TYPES as readonly string[]).includes(format))
    throw new VlabError(
      'E_BAD_ARG',
      `--format must be one of ${OUTPUT_TYPES.filter((t) => t !== 'local').join(', ')}, got "${String(format)}"`,
    );
  await withEngine(opts, async (engine) =>
    exportImage(
      engine.store,
      await mustResolve(engine.store, ref),
      { type: format, dest, ...(opts.compression ? { compression: opts.compression } : {}) },
      ref,
      (img, work) => engine.layers.withView(layersOf(img), work),
      { sourceDateEpoch: opts.sourceDateEpoch ?? envEpoch(), signal: opts.signal },
    ),
  );
}

/** `docker tag SOURCE TARGET`: point `target` at the image `source` names (replacing what it named). */
export async function tag(source: string, target: string, opts: StoreOptions = {}): Promise<void> {
  await withStore(opts, async (store) => store.tag(target, (await mustResolve(store, source)).manifestDigest));
}

/**
 * `docker rmi NAME`: remove the name (E_IMAGE_NOT_FOUND when the store has no such name). The
 * blobs stay until `prune`, which frees what no name and no cache record reaches.
 */
export async function rmi(ref: string, opts: StoreOptions & { force?: boolean } = {}): Promise<void> {
  const found = await withStore(opts, async (store) => {
    if (!opts.force) await refuseImageInUse(store, ref);
    return store.untag(ref);
  });
  if (!found) throw new VlabError('E_IMAGE_NOT_FOUND', `no such image: ${ref}`);
}

/** docker's rule: an image a container was made from keeps its name unless forced (rmi -f). */
async function refuseImageInUse(store: Store, ref: string): Promise<void> {
  const img = await store.resolve(ref);
  if (!img) return;
  const users = await imageUsers(store.root, img.manifestDigest);
  if (users.length)
    throw new VlabError(
      'E_IMAGE_IN_USE',
      `conflict: unable to remove repository reference "${ref}" (must force) - container ${users[0]!.slice(0, 12)} is using its referenced image ${img.configDigest.slice(7, 19)}: remove the container first, or use rmi -f`,
    );
}

/** `docker images`: every name in the store, with its image id and the summed size of its layer blobs. */
export async function listImages(opts: StoreOptions = {}): Promise<(ImageRef & { ref: string; size: number })[]> {
  return withStore(opts, async (store) => {
    const out = [];
    for (const { ref } of await store.listImages()) {
      const img = await mustResolve(store, ref);
      out.push({ ref, ...refOf(img), size: img.manifest.layers.reduce((n, l) => n + l.size, 0) });
    }
    return out;
  });
}

/** `docker image inspect`: the image config, with its id and manifest digest, as `vbuild inspect` prints it. */
export async function inspect(
  ref: string,
  opts: StoreOptions = {},
): Promise<{ Id: string; Digest: string } & ImageConfig> {
  const img = await withStore(opts, (store) => mustResolve(store, ref));
  return { Id: img.configDigest, Digest: img.manifestDigest, ...img.config };
}
