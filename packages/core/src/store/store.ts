import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import type { Descriptor, ImageConfig, ImageIndex, Manifest } from '../image/types.ts';
import { MEDIA, REF_NAME, withConfigDefaults } from '../image/types.ts';
import { BlobStore } from './blobs.ts';
import { withFileLock } from '@vlab/overlay';
import { normalizeRef, refCandidates } from './refs.ts';
import { Lease } from './lease.ts';
import { recoverLeftovers } from './leftovers.ts';
import type { Digest, Store as StoreContract, StoredImage } from './types.ts';

export type { Digest, StoredImage };

/**
 * The local image store (the `Store` contract of types.ts) as an OCI image layout (`oci-layout`,
 * `index.json`, `blobs/sha256`) under `root`, which skopeo and umoci read as `oci:<root>:<name:tag>`.
 */
export class LayoutStore implements StoreContract {
  readonly root: string;
  readonly blobs: BlobStore;
  /** What this store handle holds against gc: blobs it writes, and what its user holds. */
  readonly lease: Lease;

  private constructor(root: string) {
    this.root = root;
    this.lease = new Lease(root);
    this.blobs = new BlobStore(root, this.lease);
  }

  /** A handle on an existing store that creates and recovers nothing (fsck reads it as it is). */
  static at(root: string): LayoutStore {
    return new LayoutStore(root);
  }

  /** Open the store at `root`, creating it (private to its owner) and removing what dead processes left. E_STORE. */
  static async open(root: string): Promise<LayoutStore> {
    const s = new LayoutStore(root);
    try {
      // Private to its owner (vbuild runs as root): step rootfs are mounted under tmp/ and
      // snapshots/ hold every layer's files, setuid binaries included, which other local users
      // must not reach (the step mounts are not nosuid, as in Docker: see exec/README).
      await fsp.mkdir(path.dirname(s.root), { recursive: true }); // parents: the usual mode
      for (const d of [s.root, s.path('tmp'), s.path('snapshots')]) {
        await fsp.mkdir(d, { recursive: true, mode: 0o700 });
        await fsp.chmod(d, 0o700);
      }
      await fsp.mkdir(s.blobs.dir, { recursive: true });
    } catch (e) {
      throw new VlabError('E_STORE', `cannot create store at ${root}: ${(e as Error).message}`, { cause: e });
    }
    const layout = s.path('oci-layout');
    if (!(await exists(layout))) await writeAtomic(layout, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (!(await exists(s.path('index.json')))) {
      await s.updateIndex((idx) => idx);
    }
    await recoverLeftovers(root);
    return s;
  }

  path(...parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  async readIndex(): Promise<ImageIndex> {
    try {
      return JSON.parse(await fsp.readFile(this.path('index.json'), 'utf8')) as ImageIndex;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        return { schemaVersion: 2, mediaType: MEDIA.index, manifests: [] };
      throw new VlabError('E_STORE', `index.json of ${this.root} is unreadable`, { cause: e });
    }
  }

  /** Read-modify-write index.json under the store lock. */
  async updateIndex(fn: (idx: ImageIndex) => ImageIndex | Promise<ImageIndex>): Promise<void> {
    await withFileLock(this.path('index.lock'), async () => {
      const next = await fn(await this.readIndex());
      await writeAtomic(
        this.path('index.json'),
        JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: next.manifests }, null, 2),
      );
    });
  }

  /**
   * Hold `layers` (blobs and their snapshot chain) for this store handle's lease; false when one
   * of the blobs is gone (a gc took it before the hold), so the caller treats it as absent.
   */
  async holdLayers(layers: { digest: string; diffId: string }[]): Promise<boolean> {
    // what the lease held already was there when it was first held (or made by us): it stays
    const fresh = await this.lease.holdLayers(layers);
    // checked at once: an image of 200 layers was 200 access() calls one after the other
    if ((await Promise.all(fresh.blobs.map((d) => this.blobs.has(d)))).every(Boolean)) return true;
    this.lease.forget({ blobs: fresh.blobs });
    return false;
  }

  /** Hold an image's manifest, config and layers; false when part of it is gone. */
  async holdImage(img: StoredImage): Promise<boolean> {
    const fresh = await this.lease.hold({ blobs: [img.manifestDigest, img.configDigest] });
    for (const d of fresh.blobs) {
      if (!(await this.blobs.has(d))) {
        this.lease.forget(fresh);
        return false;
      }
    }
    return this.holdLayers(
      img.manifest.layers.map((d, i) => ({ digest: d.digest, diffId: img.config.rootfs.diff_ids[i] ?? d.digest })),
    );
  }

  /**
   * Writes config and manifest blobs; layers must already be stored. `configBytes`: the config as
   * another writer serialised it (a pulled image keeps its config digest, its image id).
   */
  async putImage(config: ImageConfig, layers: Descriptor[], configBytes?: Buffer): Promise<StoredImage> {
    // checked at once: 200 layers were 200 access() calls one after the other
    const present = await Promise.all(layers.map((l) => this.blobs.has(l.digest)));
    const gone = layers.find((_, i) => !present[i]);
    if (gone) throw new VlabError('E_BLOB_MISSING', `layer ${gone.digest} is not in the store`);
    const cfg = configBytes ? await this.blobs.putBytes(configBytes) : await this.blobs.putJson(config);
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config: { mediaType: MEDIA.config, digest: cfg.digest, size: cfg.size },
      layers,
    };
    const man = await this.blobs.putJson(manifest);
    return { manifestDigest: man.digest, manifest, configDigest: cfg.digest, config };
  }

  /** Point `ref` (name[:tag]) at a manifest; replaces an earlier image of the same name. */
  async tag(ref: string, manifestDigest: string): Promise<void> {
    const name = normalizeRef(ref);
    const size = await this.blobs.size(manifestDigest);
    await this.updateIndex((idx) => {
      const manifests = idx.manifests.filter((d) => d.annotations?.[REF_NAME] !== name);
      manifests.push({ mediaType: MEDIA.manifest, digest: manifestDigest, size, annotations: { [REF_NAME]: name } });
      return { ...idx, manifests };
    });
  }

  async untag(ref: string): Promise<boolean> {
    const name = normalizeRef(ref);
    let found = false;
    await this.updateIndex((idx) => {
      const manifests = idx.manifests.filter((d) => {
        const hit = d.annotations?.[REF_NAME] === name;
        found ||= hit;
        return !hit;
      });
      return { ...idx, manifests };
    });
    return found;
  }

  async listImages(): Promise<{ ref: string; digest: string }[]> {
    const idx = await this.readIndex();
    return idx.manifests
      .filter((d) => d.annotations?.[REF_NAME])
      .map((d) => ({ ref: d.annotations![REF_NAME]!, digest: d.digest }));
  }

  /** Resolve `name[:tag]`, `name@digest`, a manifest digest or a unique config-digest prefix (image id). */
  async resolve(ref: string): Promise<StoredImage | undefined> {
    const idx = await this.readIndex();
    let desc: Descriptor | undefined;
    if (/^sha256:[a-f0-9]{64}$/.test(ref) && (await this.blobs.has(ref))) {
      desc = { mediaType: MEDIA.manifest, digest: ref, size: 0 };
    } else {
      let names: string[];
      try {
        names = refCandidates(ref);
      } catch {
        names = [];
      }
      desc = idx.manifests.find((d) => names.includes(d.annotations?.[REF_NAME] ?? ''));
      if (!desc && /^(sha256:)?[a-f0-9]{6,64}$/.test(ref))
        desc = await this.findByImageId(idx, ref.replace(/^sha256:/, ''));
    }
    if (!desc) return undefined;
    return this.loadManifest(desc.digest, desc.annotations?.[REF_NAME]);
  }

  async loadManifest(manifestDigest: string, ref?: string): Promise<StoredImage> {
    const manifest = await this.blobs.readJson<Manifest>(manifestDigest);
    const config = withConfigDefaults(await this.blobs.readJson<ImageConfig>(manifest.config.digest));
    return { ref, manifestDigest, manifest, configDigest: manifest.config.digest, config };
  }

  private async findByImageId(idx: ImageIndex, prefix: string): Promise<Descriptor | undefined> {
    for (const d of idx.manifests) {
      const m = await this.blobs.readJson<Manifest>(d.digest).catch(() => undefined);
      if (m?.config.digest.slice(7).startsWith(prefix)) return d;
    }
    return undefined;
  }
}

/**
 * `Store` is the contract (types.ts) and, as a value, how to get one: callers type against the
 * interface and open the on-disk layout with `Store.open(root)`.
 */
export type Store = StoreContract;
export const Store = {
  open: (root: string): Promise<Store> => LayoutStore.open(root),
  /** A handle on an existing store that creates and recovers nothing (fsck reads it as it is). */
  at: (root: string): Store => LayoutStore.at(root),
};

/**
 * `writeAtomic` for a small text (a cache record: a few hundred bytes), synchronously: an open,
 * a write, a close and a rename are µs each, where four thread-pool round trips cost ~0.5 ms on
 * the path of every step. Not for big texts (it holds the event loop while it writes).
 */
export function writeAtomicSmall(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true }); // a full disk leaves no half-written temp file
    throw e;
  }
}

export async function writeAtomic(file: string, data: string | Buffer | Iterable<string>): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true }); // a full disk leaves no half-written temp file
    throw e;
  }
}

async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(
    () => true,
    () => false,
  );
}
