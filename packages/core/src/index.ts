/**
 * @vlab/image: build OCI images from Dockerfiles, from Node, with no daemon. {@link build} runs a
 * build and reports {@link BuildEvent}s; the image functions ({@link load}, {@link save},
 * {@link importRootfs}, {@link tag}, {@link rmi}, {@link inspect}, {@link listImages},
 * {@link prune}, {@link fsck}) work on the same local store (`$VLAB_ROOT`, or `StoreOptions.root`).
 * Every failure is a {@link VlabError} whose `code` is an {@link ErrorCode}.
 *
 * @module @vlab/image
 */
export {
  build,
  checkDockerfile,
  openEngine,
  type BuildOptions,
  type BuildResult,
  type CheckOptions,
  type CheckWarning,
  type DockerfileSpec,
  type Engine,
  type SnapshotterDriver,
} from './api.ts';
export {
  importRootfs,
  inspect,
  listImages,
  load,
  rmi,
  save,
  tag,
  type ImageRef,
  type StoreOptions,
} from './api/images.ts';
export { DEFAULT_STREAM_CONTEXT_MAX, MAX_DOCKERFILE, type StreamContext } from './context/stream.ts';
export { BUILD_EVENT_VERSION, stepCanceled, type BuildEvent, type EventSink, type StepRef } from './solve/events.ts';
export type { Entitlement } from './solve/entitlements.ts';
export {
  parseCacheFrom,
  parseCacheTo,
  type CacheExportSpec,
  type CacheImportSpec,
  type CacheMode,
} from './cache/spec.ts';
export { Store } from './store/store.ts';
export { prune, type PruneResult } from './layers/gc.ts';
export { fsck, type FsckKind, type FsckProblem, type FsckReport } from './layers/fsck.ts';
export { defaultStoreRoot } from './store/paths.ts';
export { exportImage, parseOutput, OUTPUT_TYPES, type OutputSpec, type OutputType } from './export/export.ts';
export {
  history,
  imageDiff,
  rebase,
  type HistoryRow,
  type Change,
  type ToolOptions,
  type RebaseOptions,
} from './api/tools.ts';
export { flattenInto, withFlattened } from './export/flatten.ts';
export { DEFAULT_DOWNLOAD_LIMITS, type DownloadLimits } from './solve/ops/download.ts';
export type { ImageConfig, Manifest, Descriptor } from './image/types.ts';
export {
  pull,
  push,
  login,
  logout,
  type PullOptions,
  type PullResult,
  type PushOptions,
  type PushResult,
  type RegistryOptions,
  type LayerProgress,
} from './registry/index.ts';
export { ERROR_CODES, VlabError, isVlabError, type ErrorCode, type SourceLocation } from '@vlab/errors';
export {
  run,
  containers,
  volumes,
  containerService,
  ContainerService,
  readEnvFile,
  readLogs,
  followLogs,
  shortId,
  statusText,
  stateWord,
  humanDuration,
  commandText,
  inspectJson,
  execContainer,
  pauseContainer,
  topContainer,
  unpauseContainer,
  commitContainer,
  copyFrom,
  copyTo,
  diffContainer,
  type ContainerRunOptions,
  type Container,
  type ContainerConfig,
  type ContainerState,
  type ContainerStatus,
  type ContainerMount,
  type CreateOptions,
  type StartOptions,
  type LogEntry,
  type Volume,
} from './containers/index.ts';
export {
  squash,
  squashImage,
  layers,
  findBase,
  type SquashOptions,
  type SquashResult,
  type LayersReport,
  type LayerReport,
  type LayerChange,
  type ChangeKind,
  type BaseMatch,
  systemDf,
  type DfReport,
  type DfRow,
  type DfType,
  type DfImage,
  type DfContainer,
  type DfVolume,
  type DfCacheEntry,
} from './tools/index.ts';
export { readDockerfileAgain } from './api/check.ts';
/** For the vbuild CLI's warm server (its fd-passing addon): the CLI imports core only from here. */
export { loadCoreAddon } from './fsutil/native-addon.ts';
