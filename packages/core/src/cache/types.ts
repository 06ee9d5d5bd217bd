/**
 * The build cache's seam. Callers depend on `BuildCache`; `DirBuildCache` (one JSON file per key)
 * implements it, and cache.contract.test.ts checks every promise written here.
 */
import type { ImageConfig, LayerRef } from '../image/types.ts';

/** What a step produced: the whole image state after it, so a hit needs nothing else. */
export interface CacheRecord {
  key: string;
  layers: LayerRef[];
  config: ImageConfig;
  created: string;
}

/** Path → `type:mode:content` read as pairs (a COPY's compact list: context/file-digests.ts). */
export interface FileList {
  /** [path, value] pairs, each path once. */
  entries(): Iterable<[string, string]>;
  get(path: string): string | undefined;
}

/**
 * The inputs a step was last built from at one place of one Dockerfile, so a miss can say which
 * input changed (instruction, build arg, file, or the step before it).
 */
export interface StepInputs {
  parentKey: string;
  instruction: string;
  args: Record<string, string>;
  /** What the step read, by path: a plain record (as `lastInputs` gives it back) or a FileList. */
  files: Record<string, string> | FileList;
}

/**
 * Cache key → record, and per-location inputs for miss reasons. Keys and slots are digests
 * (`sha256:<64 hex>`, DESIGN.md: `cacheKey()` runs before any work); any other string rejects with
 * E_BAD_DIGEST, so no key can name a file outside the cache.
 * - The cache is advisory: a record or inputs file that is missing, unreadable or corrupt reads
 *   as absent (undefined), never as an error; the step just runs again.
 * - Writes are atomic (temp file + rename): a reader sees the old record or the new one, and a
 *   writer killed mid-way leaves only a temp file (never read; removed by the next store open).
 * - Writes are idempotent, and concurrent writers of one key are safe: the last rename wins, and
 *   records of one key are interchangeable (same key, same inputs).
 * - A record does not hold its blobs against gc: `prune` keeps what records reach, and a hit whose
 *   layers are gone is treated as a miss by the solver.
 */
export interface BuildCache {
  /** The record of `key`, or undefined. */
  get(key: string): Promise<CacheRecord | undefined>;
  /** Store `rec` under `rec.key`, replacing any earlier record. Rejects only on I/O errors (E_NO_SPACE…). */
  put(rec: CacheRecord): Promise<void>;
  /** Drop the record of `key`; idempotent (a missing record is no error). */
  remove(key: string): Promise<void>;
  /** Every key with a record, in no particular order. */
  keys(): Promise<string[]>;
  /** What the step at `slot` (a Dockerfile location's digest) was last built from, or undefined. */
  lastInputs(slot: string): Promise<StepInputs | undefined>;
  /** Remember the inputs of the step at `slot`, replacing the earlier ones. */
  saveInputs(slot: string, inputs: StepInputs): Promise<void>;
}
