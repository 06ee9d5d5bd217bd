import type { Dockerfile } from '@vlab/dockerfile';
import type { BuildCache } from '../cache/cache.ts';
import type { RegistryCaches } from '../cache/registry.ts';
import type { BuildContext } from '../context/context.ts';
import type { Executor, ExtraHost, ExtraMount, Limits } from '../exec/types.ts';
import type { Entitlement } from './entitlements.ts';
import type { NamedContexts } from './named-contexts.ts';
import type { ImageConfig, LayerRef } from '../image/types.ts';
import type { Store } from '../store/store.ts';
import type { EventSink } from './events.ts';
import type { LayerManager } from '../layers/manager.ts';
import type { Download, DownloadLimits } from './ops/download.ts';

/** The image state after a step: everything a child step or the exporter needs. */
export interface StageState {
  key: string;
  layers: LayerRef[];
  config: ImageConfig;
  /** Time of the newest step that made the state (cache-stable, for reproducible digests). */
  created: string;
}

/** What is built: the Dockerfile, its args and the platform. Fixed for the whole build. */
export interface BuildInputs {
  df: Dockerfile;
  dockerfilePath: string;
  buildArgs: Record<string, string>;
  globalArgs: Record<string, string>;
  predefinedArgs: Record<string, string>;
  platform: { os: string; architecture: string; variant?: string };
  /** SOURCE_DATE_EPOCH: fixed timestamps and clamped mtimes. */
  sourceDateEpoch?: number;
}

/** When a step may be taken from the cache (--no-cache, --no-cache-filter). */
export interface CachePolicy {
  noCache: boolean;
  /** Stage names or indexes whose steps always run. */
  noCacheFilter: Set<string>;
}

/** The engine a build runs on: blobs and images, cache records, snapshots, the executor. */
export interface BuildServices {
  store: Store;
  cache: BuildCache;
  layers: LayerManager;
  /** Created on first use: a build without RUN never starts one. */
  executor: () => Promise<Executor>;
  /** The registry caches of --cache-from / --cache-to: lookups after the local cache, and the record of each step. */
  registryCache?: RegistryCaches;
}

/** What the command line gives every RUN container. */
export interface RunSettings {
  secrets: Record<string, string>;
  network?: 'none' | 'host';
  /** Entitlements granted on the command line (--allow): what a RUN may ask for. */
  allow: ReadonlySet<Entitlement>;
  /** cgroup limits of every RUN container (the default pids limit included). */
  limits: Limits;
  /**
   * What docker build adds to every RUN container (--add-host, --shm-size; --ulimit is in limits)
   * and `key`, their digest in each RUN's cache key (undefined when none is given).
   */
  run: { extraHosts: ExtraHost[]; mounts: ExtraMount[]; key?: string };
}

/** Where steps read content from, besides the store: the context, named contexts, other stages. */
export interface BuildSources {
  context: BuildContext;
  /** --build-context: names that stand for images or directories the command line gave. */
  namedContexts: NamedContexts;
  /** --pull: FROM and COPY --from images are checked against their registry even when stored. */
  pull: boolean;
  /** TLS and credentials for the registries images are pulled from (and pushed to). */
  registry: import('../registry/client.ts').RegistryOptions;
  /** Final state of each stage, by index, once requested (stages run at most once). */
  stageResult: (index: number) => Promise<StageState>;
}

/** ADD URL downloads: fetched at most once per build, removed when it ends. */
export interface BuildDownloads {
  downloads: Map<string, Promise<Download>>;
  /** Caps on each ADD URL download (BuildOptions.addLimits over the defaults). */
  downloadLimits?: Partial<DownloadLimits>;
}

/** Progress out (events) and abort in. */
export interface BuildReport {
  emit: EventSink;
  signal?: AbortSignal;
}

/**
 * A whole build, the parts together: api.ts makes it, the solver holds it. Modules take only
 * the parts they use (e.g. `BuildInputs & BuildServices`), so a part's callers are easy to find.
 */
export type BuildSession = BuildInputs &
  CachePolicy &
  BuildServices &
  RunSettings &
  BuildSources &
  BuildDownloads &
  BuildReport;

/** What looking up another stage or an image needs (FROM, COPY --from, RUN --mount from=). */
export type StageLookup = Pick<BuildInputs, 'df'> & Pick<BuildSources, 'namedContexts' | 'stageResult'> & ImageSource;

/** What resolving an image by name needs: the store, and the registry it is pulled from when missing. */
export type ImageSource = Pick<BuildServices, 'store'> &
  Pick<BuildSources, 'pull' | 'registry'> &
  Pick<BuildInputs, 'platform'> &
  BuildReport;
