/**
 * @vlab/overlay — snapshots (containerd's Snapshotter shape) on overlayfs or plain copies, and
 * OCI layers out of them (`diff`) and into them (`apply`).
 *
 * @module @vlab/overlay
 */
import { PassThrough, type Readable } from 'node:stream';
import type { Snapshotter } from './types.ts';
import { diffSource, type DiffOptions } from './layer/diff.ts';

export * from './types.ts';
export { createSnapshotter, probeOverlay, type SnapshotterOptions } from './snapshotter.ts';
export {
  mountAll,
  mountScratch,
  mountThrowaway,
  mountPinned,
  unmountThrowaway,
  unmountAll,
  mountSnapshot,
  isMounted,
  mountsUnder,
  overlayMountArgs,
} from './mount.ts';
export { nativeHelper, holdEventLoop, isalAddon } from './native.ts';
export { hasEscapes, hostPath, nameBytes, nameFromBytes, readlinkName } from './fsname.ts';
export { InRootDirs, atFd, openDirAt, removeAt } from './in-root.ts';
export {
  openSameSync,
  readAllSync,
  readlinkWalked,
  openDirInRoot,
  DirsInRoot,
  lstatInRoot,
  readlinkInRoot,
  statDirInRoot,
  pinInRoot,
  openInRoot,
  changedError,
  type FileIdentity,
} from './open-same.ts';
export { apply, cleanPath, type ApplyOptions } from './layer/apply.ts';
export { writeLayer, hashingStream, type Compression, type LayerWritten } from './layer/digest.ts';
export { diffSource, type DiffOptions } from './layer/diff.ts';
export { changes, type Change, type ChangesOptions } from './layer/changes.ts';
// The layer tar codec, for writers of layers outside this package (COPY's pack output): the same
// headers, bodies, whiteouts, mtime rule and stream the snapshot diff writes.
export { bareEntry, encodeHeader, padding, END_OF_ARCHIVE, type TarEntry, type EntryType } from './layer/tar-format.ts';
export { tarEntryBytes, whiteoutHeader, layerMtime, layerTar } from './layer/tar-write.ts';
export { TarSink } from './layer/tar-sink.ts';
export { UnionView, type UnionStat, type TarSource, type TarLayerLimits } from './union-view.ts';
export { sameContent, sameBytes, fileChunks, type SizeAndMtime } from './same-content.ts';
export { dirUsage, diskBytes } from './usage.ts';
export { layerHeaders } from './layer/list.ts';
export { snapshotterSuite, type TestApi } from './testsuite.ts';
export { isRealRoot, syncFilesystem, sysHelper } from './sys.ts';
export { withFileLock, pidAlive } from './lock.ts';
export { checkSnapshots, type SnapshotProblem, type SnapshotProblemKind } from './check.ts';

/**
 * OCI layer tar of what changed in active snapshot `key` (overlay: the upper dir only; native:
 * compared with the parent). Sorted entries, whiteouts converted, mtimes clamped to
 * `sourceDateEpoch`. Errors (E_SNAPSHOT_NOT_FOUND, E_SNAPSHOT_KIND…) surface on the stream.
 */
export function diff(s: Snapshotter, key: string, opts: DiffOptions = {}): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  s.diffSource(key).then(
    (src) => {
      const r = diffSource(src, opts);
      r.on('error', (e) => out.destroy(e));
      r.pipe(out);
    },
    (e: Error) => out.destroy(e),
  );
  return out;
}
