/**
 * The store's seam: content-addressed blobs and the image index over them. Callers depend on these
 * interfaces; `LayoutStore` and `BlobStore` (an OCI image layout on disk) implement them, and
 * store.contract.test.ts checks every promise written here. Errors are VlabErrors with the code
 * named; "rejects" means the promise rejects (only `path` and `open` throw, synchronously).
 */
import type { Readable, Writable } from 'node:stream';
import type { Descriptor, ImageConfig, ImageIndex, Manifest } from '../image/types.ts';
import type { CommitBatch } from './batch.ts';
import type { Lease } from './lease.ts';

export type Digest = `sha256:${string}`;

export interface StoredImage {
  ref?: string;
  manifestDigest: string;
  manifest: Manifest;
  configDigest: string;
  config: ImageConfig;
}

/** A blob being written: write `stream`, then `commit()` or `abort()` exactly once. */
export interface BlobWriter {
  stream: Writable;
  /**
   * Verify and publish: the content is flushed (fsync) and renamed to its digest in one step, so
   * no reader ever sees part of it. Rejects with E_DIGEST_MISMATCH (nothing published) when
   * `expected` is given and differs, E_NO_SPACE when the disk is full. The temp file is gone
   * afterwards either way. With `batch`, verified and held but named only at `batch.flush()`
   * (one syncfs for many blobs: batch.ts); the temp file stays until then.
   */
  commit(expected?: string, batch?: CommitBatch): Promise<{ digest: Digest; size: number }>;
  /** Drop what was written; publishes nothing. Never rejects for a writer that already failed. */
  abort(): Promise<void>;
}

/**
 * A blob written with synchronous calls: `write` returns once the bytes are in the temp file, so
 * the caller may refill its buffer at once (no chunk waits in a stream or for the garbage
 * collector). commit() and abort() as BlobWriter's.
 */
export interface SyncBlobWriter {
  /** Append `bytes` (hashed as written). Throws E_NO_SPACE when the disk is full. */
  write(bytes: Buffer): void;
  commit(expected?: string, batch?: CommitBatch): Promise<{ digest: Digest; size: number }>;
  abort(): Promise<void>;
}

/**
 * A temp blob file that another thread creates (exclusively), writes and hashes: a worker that
 * gunzips a pulled layer. The caller vouches for the digest it passes to commit().
 */
export interface FileBlobWriter {
  /** The file to create with O_EXCL and write; nothing is there yet. */
  readonly path: string;
  /** As BlobWriter's (`batch` too), with `digest` the writer's hash of what it wrote; rejects with E_BLOB_MISSING if nothing was written. */
  commit(digest: string, expected?: string, batch?: CommitBatch): Promise<{ digest: Digest; size: number }>;
  /** Remove the file (once its writer has closed it); returns `cause` as the store reports it (E_NO_SPACE for a full disk). */
  abort(cause?: unknown): Promise<unknown>;
}

/**
 * Content-addressed blobs (`blobs/sha256/<hex>`). Every digest argument must be `sha256:<64 hex>`,
 * else the call rejects with E_BAD_DIGEST (so no digest can name a path outside the store).
 * - Atomic: a blob exists whole or not at all. A writer killed at any point leaves at most a
 *   `.tmp-<pid>-*` file, which is never listed and is removed by the next store open.
 * - Idempotent: writing content that is already there succeeds and changes nothing.
 * - Concurrency: any number of writers and readers, in any processes; two writers of the same
 *   content both succeed and one copy remains.
 * - A blob written through a store handle is held by its lease (gc keeps it) before it has a name.
 */
export interface Blobs {
  /** The blob's file, for hard links and archive members (a path, whether or not it exists). Throws E_BAD_DIGEST. */
  path(digest: string): string;
  /** Whether the blob is stored. Never rejects for a valid digest. */
  has(digest: string): Promise<boolean>;
  /** Its size in bytes; rejects with E_BLOB_MISSING when it is not stored. */
  size(digest: string): Promise<number>;
  /** Parse it as JSON; rejects with E_BLOB_MISSING when it is missing or not JSON. */
  readJson<T>(digest: string): Promise<T>;
  /** Stream its content (throws E_BAD_DIGEST); a missing blob makes the stream emit an error (ENOENT). */
  open(digest: string): Readable;
  /** Stream `source` in (hashed while written); E_DIGEST_MISMATCH when `expected` differs, E_NO_SPACE. */
  put(source: Readable, expected?: string): Promise<{ digest: Digest; size: number }>;
  /** `put` of bytes in memory; content already stored is not written again. */
  putBytes(data: Buffer | string): Promise<{ digest: Digest; size: number }>;
  /** `putBytes` of `JSON.stringify(value)`, with the bytes written. */
  putJson(value: unknown): Promise<{ digest: Digest; size: number; bytes: Buffer }>;
  /** A writer for content produced piece by piece (a layer diff). */
  create(): Promise<BlobWriter>;
  /** A writer for content produced into a reused buffer (a COPY layer packed in one pass). */
  createSync(): Promise<SyncBlobWriter>;
  /** A temp blob file for a writer on another thread (FileBlobWriter). */
  createFile(): Promise<FileBlobWriter>;
  /** Delete the blob; idempotent (a missing blob is no error). Only gc and fsck call it. */
  remove(digest: string): Promise<void>;
  /** Every stored blob's digest (temp files excluded), in no particular order. */
  list(): Promise<Digest[]>;
}

/**
 * The local image store: blobs plus `index.json`, whose entries name manifests
 * (`org.opencontainers.image.ref.name`). index.json is replaced atomically (temp file + rename)
 * and only under the store's file lock, so concurrent builds, tags and gc in several processes
 * never lose each other's names, and a reader sees the old or the new index, never a mix.
 */
export interface Store {
  readonly root: string;
  readonly blobs: Blobs;
  /** What this handle holds against gc: blobs it writes, and what its user holds (lease.ts). */
  readonly lease: Lease;
  /** A path under the store root (no check: callers pass their own constant parts). */
  path(...parts: string[]): string;
  /** index.json; an empty index when there is none; rejects with E_STORE when it is unreadable. */
  readIndex(): Promise<ImageIndex>;
  /** Read-modify-write of index.json under the store lock: atomic, serialized across processes. */
  updateIndex(fn: (idx: ImageIndex) => ImageIndex | Promise<ImageIndex>): Promise<void>;
  /** Hold `layers` (blobs and snapshot chain) for this handle's lease; false when a blob is gone. */
  holdLayers(layers: { digest: string; diffId: string }[]): Promise<boolean>;
  /** Hold an image's manifest, config and layers; false when part of it is gone. */
  holdImage(img: StoredImage): Promise<boolean>;
  /**
   * Write the config and manifest blobs of an image whose layers are stored (E_BLOB_MISSING
   * otherwise). Idempotent: the same config and layers give the same digests. Names nothing.
   * `configBytes`: the config as another writer serialised it, stored as it is (a pulled image
   * keeps its config digest, its image id).
   */
  putImage(config: ImageConfig, layers: Descriptor[], configBytes?: Buffer): Promise<StoredImage>;
  /**
   * Point `ref` (name[:tag], normalized) at a stored manifest, replacing what it named; idempotent.
   * Rejects with E_BAD_REF for an invalid reference, E_BLOB_MISSING when the manifest is not stored.
   */
  tag(ref: string, manifestDigest: string): Promise<void>;
  /** Remove the name; false when the store had no such name (idempotent). E_BAD_REF when invalid. */
  untag(ref: string): Promise<boolean>;
  /** Every name and the manifest it points at. */
  listImages(): Promise<{ ref: string; digest: string }[]>;
  /**
   * The image `name[:tag]`, `name@digest`, a manifest digest or a unique image-id prefix names;
   * undefined when nothing matches (an unparsable reference matches nothing: no rejection).
   */
  resolve(ref: string): Promise<StoredImage | undefined>;
  /** Read a stored manifest and its config; rejects with E_BLOB_MISSING when either is missing. */
  loadManifest(manifestDigest: string, ref?: string): Promise<StoredImage>;
}
