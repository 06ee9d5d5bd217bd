/**
 * The seam of @vlab/overlay, in containerd's Snapshotter shape.
 *
 * Active snapshots (from `prepare`) are writable and can never be parents; committed snapshots
 * (from `commit`) are immutable and are what children stack on. Keys and names share one key space.
 * Mounts are returned as data: a caller mounts them (`mountAll` in mount.ts), hands them to an OCI
 * runtime, or prints them.
 */
export interface Mount {
  type: string; // 'overlay' | 'bind'
  source: string;
  options: string[];
}

export type SnapshotKind = 'active' | 'view' | 'committed';

export interface SnapshotInfo {
  key: string;
  kind: SnapshotKind;
  parent?: string;
  labels: Record<string, string>;
  created: string; // ISO time
}

export interface Usage {
  size: number; // bytes
  inodes: number;
}

/** How a directory records deletions: overlay char-device whiteouts, or by really deleting (native). */
export type WhiteoutMode = 'overlay' | 'oci';

/** Where `diff()` finds what changed: an overlay upper dir alone, or a tree to compare with its parent's. */
export type DiffSourceInfo =
  /**
   * `lowers`: the committed dirs below, nearest first (to tell a copied-up but unchanged dir).
   * `lowersKey`: a name under which their paths name their content for this process (the
   * store's dirIdentity), so that their kept answers need no stat of each (union-layers.ts).
   */
  | { kind: 'upper'; upper: string; lowers?: string[]; lowersKey?: string }
  /** `copiedAt`: ctime (ms) of the marker made after `dir` was copied from `base` (same-content.ts) */
  | { kind: 'compare'; dir: string; base?: string; copiedAt?: number };

/**
 * Label (value "true") of a snapshot whose record is not written back to disk before `prepare`,
 * `view` or `remove` returns: it survives a killed process (the page cache holds it), not a machine
 * crash: after a reboot the record is gone and the next open removes its directory. For a build's
 * temporaries, so that a step's prepare waits for no disk under the store's lock; `commit` makes
 * the committed snapshot durable as always (and drops the label), unless its own `labels` carry
 * the label again: a *volatile commit* (a build's step), neither synced nor written durably, which
 * `settle()` makes durable later (one syncfs for every step of a build). A durable record never
 * has a volatile parent: a durable commit, prepare or view on one settles the chain first.
 */
export const VOLATILE_LABEL = 'vlab.overlay/volatile';

export interface Snapshotter {
  readonly driver: 'overlay' | 'native';
  /** Where `apply()` should unpack into for an active snapshot, and with which whiteout mode. */
  writableDir(key: string): Promise<{ dir: string; whiteouts: WhiteoutMode }>;
  /** New writable snapshot on top of committed `parent`. Throws E_SNAPSHOT_EXISTS if key exists. */
  prepare(key: string, parent?: string, labels?: Record<string, string>): Promise<Mount[]>;
  /** New read-only snapshot on top of committed `parent`. */
  view(key: string, parent?: string, labels?: Record<string, string>): Promise<Mount[]>;
  /**
   * Turn active snapshot `key` into committed `name`; atomic (metadata renamed into place). Its
   * content and record are durable when this returns, except for a volatile commit (`labels` with
   * VOLATILE_LABEL "true"): then they last as long as the boot, until `settle()`.
   */
  commit(name: string, key: string, labels?: Record<string, string>): Promise<void>;
  /** Make every volatile commit made so far durable: one syncfs, then one durable metadata write. */
  settle(): Promise<void>;
  mounts(key: string): Promise<Mount[]>;
  /** Refused with E_SNAPSHOT_IN_USE while a child exists. Idempotent for a missing key. */
  remove(key: string): Promise<void>;
  usage(key: string): Promise<Usage>;
  stat(key: string): Promise<SnapshotInfo | undefined>;
  walk(): Promise<SnapshotInfo[]>;
  /** For `diff()`: what to read for active snapshot `key`. E_SNAPSHOT_KIND unless active. */
  diffSource(key: string): Promise<DiffSourceInfo>;
}
