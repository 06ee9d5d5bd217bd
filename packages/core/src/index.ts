/** @vlab/image: build OCI images from Dockerfiles. */
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
export type { BuildEvent, StepRef } from './solve/events.ts';
export type { Entitlement } from './solve/entitlements.ts';
export { Store } from './store/store.ts';
export { prune, type PruneResult } from './layers/gc.ts';
export { fsck, type FsckKind, type FsckProblem, type FsckReport } from './layers/fsck.ts';
export { defaultStoreRoot } from './store/paths.ts';
export { exportImage, parseOutput, type OutputSpec } from './export/export.ts';
export { DEFAULT_DOWNLOAD_LIMITS, type DownloadLimits } from './solve/ops/download.ts';
export type { ImageConfig, Manifest, Descriptor } from './image/types.ts';
export * from './tools/index.ts';
export { VlabError, isVlabError } from '@vlab/errors';
