import type { Dockerfile } from '@vlab/dockerfile';
import type { BuildCache } from '../cache/cache.ts';
import type { BuildContext } from '../context/context.ts';
import type { Executor, ExtraHost, ExtraMount, Limits } from '../exec/types.ts';
import type { Entitlement } from './entitlements.ts';
import type { NamedContexts } from './named-contexts.ts';
import type { ImageConfig, LayerRef } from '../image/types.ts';
import type { Store } from '../store/store.ts';
import type { EventSink } from './events.ts';
import type { LayerManager } from '../layers/manager.ts';

/** The image state after a step: everything a child step or the exporter needs. */
export interface StageState {
  key: string;
  layers: LayerRef[];
  config: ImageConfig;
  /** Time of the newest step that made the state (cache-stable, for reproducible digests). */
  created: string;
}

/** Everything one build shares; built once in api.ts, read by the solver and the ops. */
export interface BuildSession {
  df: Dockerfile;
  dockerfilePath: string;
  store: Store;
  cache: BuildCache;
  layers: LayerManager;
  context: BuildContext;
  executor: () => Promise<Executor>;
  emit: EventSink;
  signal?: AbortSignal;
  buildArgs: Record<string, string>;
  globalArgs: Record<string, string>;
  predefinedArgs: Record<string, string>;
  platform: { os: string; architecture: string; variant?: string };
  noCache: boolean;
  noCacheFilter: Set<string>;
  sourceDateEpoch?: number;
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
  /** --build-context: names that stand for images or directories the command line gave. */
  namedContexts: NamedContexts;
  /** ADD URL downloads, fetched at most once per build. */
  downloads: Map<string, Promise<import('./ops/add.ts').Download>>;
  /** Caps on each ADD URL download (BuildOptions.addLimits over the defaults). */
  downloadLimits?: Partial<import('./ops/download.ts').DownloadLimits>;
  /** --pull: FROM and COPY --from images are checked against their registry even when stored. */
  pull: boolean;
  /** TLS and credentials for the registries images are pulled from (and pushed to). */
  registry: import('../registry/client.ts').RegistryOptions;
  /** Final state of each stage, by index, once requested (stages run at most once). */
  stageResult: (index: number) => Promise<StageState>;
}
