import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { debuglog } from 'node:util';
import { VlabError } from '@vlab/errors';
import { PROXY_ARGS, resolveGlobalArgs, selectTarget, type Dockerfile, type Stage } from '@vlab/dockerfile';
import { cgroupParentOf, defaultStoreRoot } from './store/paths.ts';
import { isNoSpace, noSpaceError } from './store/space.ts';
import { FileHashCache } from './context/hash-cache.ts';
import { BuildContext } from './context/context.ts';
import { createExecutor, EXECUTOR_KINDS, sweepOrphanCgroups, type ExecutorKind } from './exec/index.ts';
import type { Executor } from './exec/types.ts';
import { solve } from './solve/solver.ts';
import { planBuild } from './plan/plan.ts';
import type { BuildEvent } from './solve/events.ts';
import type { RunSettings } from './solve/context.ts';
import type { ImageConfig, Manifest } from './image/types.ts';
import { MEDIA } from './image/types.ts';
import { hostPlatform, platformString } from './image/platform.ts';
import { predefinedArgs } from './image/args.ts';
import { exportImage, type OutputSpec } from './export/export.ts';
import type { Download, DownloadLimits } from './solve/ops/download.ts';
import { grantedEntitlements, type Entitlement } from './solve/entitlements.ts';
import { NamedContexts } from './solve/named-contexts.ts';
import { runLimits } from './exec/limits.ts';
import { detectCgroupLayout } from './exec/cgroups.ts';
import { checkPlatform, parseExtraHosts, parseUlimits, shmMount } from './solve/run-options.ts';
import { unpackStreamContext, type StreamContext } from './context/stream.ts';
import { readInRoot } from './fsutil/in-root.ts';
import { openEngine, type Engine, type SnapshotterDriver } from './api/engine.ts';
import { loadDockerfile, type DockerfileSpec } from './api/check.ts';
import { squashImage } from './tools/squash.ts';

export { openEngine, type Engine, type SnapshotterDriver } from './api/engine.ts';
export { checkDockerfile, type CheckOptions, type CheckWarning, type DockerfileSpec } from './api/check.ts';
import type { RegistryOptions } from './registry/client.ts';
import { pushOutputs } from './export/registry.ts';
import { closeCaches, exportCaches, openCaches } from './api/build-cache.ts';
import type { CacheExportSpec, CacheImportSpec } from './cache/spec.ts';

const settleLog = debuglog('vlab');

export interface BuildOptions {
  /**
   * Build context directory, or a stream as `docker build -` reads stdin: a tar (plain, gzip,
   * bzip2, xz) unpacked into a private temp dir, or else a Dockerfile with an empty context.
   */
  context: string | StreamContext;
  /** Dockerfile path (default `<context>/Dockerfile`; with a stream context, a path inside it) or `{ text }`. */
  dockerfile?: DockerfileSpec;
  tags?: string[];
  buildArgs?: Record<string, string>;
  target?: string;
  noCache?: boolean;
  /** docker build --squash: the layers above the base become one (an export-time transform: the cache keeps each step's). */
  squash?: boolean;
  /** Stage names (or indexes) whose steps are never taken from the cache. */
  noCacheFilter?: string[];
  output?: OutputSpec[];
  signal?: AbortSignal;
  onEvent?: (e: BuildEvent) => void;
  /** Store root (default: $VLAB_ROOT, /var/lib/vlab as root, else $XDG_DATA_HOME/vlab). */
  root?: string;
  /** Seconds since the epoch: fixed timestamps and clamped mtimes for reproducible digests. */
  sourceDateEpoch?: number;
  /** id → host file, for RUN --mount=type=secret. */
  secrets?: Record<string, string>;
  /** Build-wide network of every RUN; 'host' is the caller's own choice and also grants network.host. */
  network?: 'none' | 'host';
  /**
   * Entitlements a Dockerfile may use (BuildKit's --allow): `RUN --network=host` needs
   * 'network.host'; `RUN --security=insecure` needs 'security.insecure' (and is then E_UNSUPPORTED).
   */
  allow?: Entitlement[];
  /**
   * Named contexts (BuildKit's --build-context): name → `docker-image://REF` (the local store),
   * `oci-layout://DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`, or a directory.
   * They stand for `FROM name` and `COPY --from=name` (a directory: COPY only), before stages of
   * that name. The Dockerfile itself cannot name host paths.
   */
  buildContexts?: Record<string, string>;
  /** Memory limit of each RUN: bytes or a docker size ('512m', '1g'). Exceeding it is E_RUN_OOM. */
  memory?: number | string;
  /** CPU microseconds each RUN may use per period (docker --cpu-quota). */
  cpuQuota?: number;
  /** CFS period in microseconds (default 100000). */
  cpuPeriod?: number;
  /** Process limit of each RUN; default 2048 (podman's) as root, -1 or 0 for none. */
  pidsLimit?: number;
  /** Labels set on the final image's config (docker build --label), over the Dockerfile's. */
  labels?: Record<string, string>;
  /** docker's --platform: only the host's own platform (`linux/amd64`…) is accepted; else E_UNSUPPORTED. */
  platform?: string;
  /** `host:ip` (or `host=ip`) lines for each RUN container's /etc/hosts (docker build --add-host). */
  addHosts?: string[];
  /** docker's `--ulimit`: `nofile=N[:N]` only (what the executors set). */
  ulimits?: string[];
  /** Size of each RUN container's /dev/shm tmpfs: bytes or a docker size (default 64m). */
  shmSize?: number | string;
  executor?: ExecutorKind;
  snapshotter?: SnapshotterDriver;
  /** docker build --pull: check the registry for every FROM / COPY --from image, even one in the store. */
  pull?: boolean;
  /** Push every tag to its registry once built (docker buildx --push). */
  push?: boolean;
  /** TLS, credentials and retries for pulls and pushes (see RegistryOptions). */
  registry?: RegistryOptions;
  /** --cache-to: registry caches to write this build's steps to (parseCacheTo), merged with what each held. */
  cacheTo?: CacheExportSpec[];
  /** --cache-from: registry caches whose steps a build may take (parseCacheFrom), after the local cache. */
  cacheFrom?: CacheImportSpec[];
  /** Caps on each ADD <url> download: size, total and idle time, redirects (defaults in DEFAULT_DOWNLOAD_LIMITS). */
  addLimits?: Partial<DownloadLimits>;
}

export interface BuildResult {
  /** Config digest (docker's image id). */
  imageId: string;
  /** Manifest digest. */
  digest: string;
  manifest: Manifest;
  config: ImageConfig;
}

/** Build an image from a Dockerfile and a context: what `vbuild build` does. Rejects only with VlabError. */
export async function build(opts: BuildOptions): Promise<BuildResult> {
  const opened: Engine[] = [];
  try {
    return await buildImage(opts, opened);
  } catch (e) {
    if (isNoSpace(e)) throw noSpaceError(opened[0]?.store.root ?? opts.root ?? defaultStoreRoot(), e);
    if (e instanceof VlabError) throw e;
    if (opts.signal?.aborted) throw new VlabError('E_ABORTED', 'build aborted', { cause: e });
    throw new VlabError('E_INTERNAL', `build failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  } finally {
    // the image is tagged (or the build failed): what the build held is gc's again
    for (const e of opened) {
      closeCaches(e);
      await e.store.lease.release().catch(() => undefined);
    }
  }
}

async function buildImage(opts: BuildOptions, opened: Engine[]): Promise<BuildResult> {
  const platform = hostPlatform();
  checkPlatform(opts.platform, platform);
  if (opts.push && !opts.tags?.length)
    throw new VlabError('E_BAD_ARG', '--push needs a name to push to: give one with -t NAME');
  const ulimits = parseUlimits(opts.ulimits);
  const run = runExtras(opts, ulimits.nofile);
  if (typeof opts.context === 'string')
    return buildFrom(opts, opened, path.resolve(opts.context), opts.dockerfile, run, ulimits);
  const unpacked = await unpackStreamContext(opts.context);
  try {
    return await buildFrom(opts, opened, unpacked.dir, await streamDockerfile(unpacked, opts.dockerfile), run, ulimits);
  } finally {
    await unpacked.cleanup();
  }
}

/**
 * The Dockerfile of a stream context: the stream itself, or (docker's rule) a path inside the
 * unpacked context, named as given in locations (its temp dir is gone when an error is read).
 */
async function streamDockerfile(
  unpacked: { dir: string; dockerfileText?: string },
  given: BuildOptions['dockerfile'],
): Promise<BuildOptions['dockerfile']> {
  if (unpacked.dockerfileText !== undefined) {
    if (given)
      throw new VlabError(
        'E_BAD_ARG',
        'the stream holds a Dockerfile, and a Dockerfile was given too: give the context as a tar, or one of them',
      );
    return { text: unpacked.dockerfileText };
  }
  if (typeof given === 'object') return given;
  const name = given ?? 'Dockerfile';
  const text = await readInRoot(unpacked.dir, name);
  if (text === undefined) throw new VlabError('E_DOCKERFILE_NOT_FOUND', `the context from the stream has no ${name}`);
  return { text, path: name };
}

/** --add-host and --shm-size for every RUN, and their digest for the RUN cache keys (BuildKit keys them too). */
function runExtras(opts: BuildOptions, nofile: number | undefined): RunSettings['run'] {
  const extraHosts = parseExtraHosts(opts.addHosts);
  const mounts = shmMount(opts.shmSize);
  const any = extraHosts.length || mounts.length || nofile !== undefined;
  const key = any
    ? createHash('sha256').update(JSON.stringify({ extraHosts, mounts, nofile })).digest('hex')
    : undefined;
  return { extraHosts, mounts, key };
}

async function buildFrom(
  opts: BuildOptions,
  opened: Engine[],
  contextDir: string,
  dockerfile: BuildOptions['dockerfile'],
  run: RunSettings['run'],
  ulimits: { nofile?: number },
): Promise<BuildResult> {
  const started = Date.now();
  const emit = opts.onEvent ?? (() => undefined);
  const { df, dockerfilePath } = await loadDockerfile(contextDir, dockerfile);
  for (const w of df.warnings)
    emit({
      type: 'warning',
      message: w.message,
      location: { file: dockerfilePath, ...w.range.start },
      time: Date.now(),
    });
  const target = selectTarget(df, opts.target);
  const engine = await openEngine(opts.root, opts.snapshotter);
  opened.push(engine);
  // A build killed between RUN steps leaves the cgroup made ahead for its next run (exec/
  // cgroup-pool.ts): removed by the next build, also one that runs no RUN (and so no executor).
  if (process.getuid?.() === 0) await sweepOrphanCgroups(cgroupParentOf(engine.store.root));
  const hashes = await FileHashCache.load(engine.store.path('cache', 'filehash.bin'));
  const allow = grantedEntitlements(opts.allow, opts.network);
  const namedContexts = await NamedContexts.open(opts.buildContexts, engine.store, hashes);
  const limits = {
    ...runLimits(opts, { root: process.getuid?.() === 0, layout: await detectCgroupLayout().catch(() => undefined) }),
    ...ulimits,
  };
  const counted = { hits: hashes.hits, misses: hashes.misses }; // the cache may outlive a build
  const context = await BuildContext.open(
    contextDir,
    hashes,
    dockerfile && typeof dockerfile === 'string' ? path.resolve(dockerfile) : undefined,
    opts.signal,
  );
  const platform = hostPlatform();
  const predefined = predefinedArgs(platform);
  const buildArgs = opts.buildArgs ?? {};
  const globalArgs = resolveGlobalArgs(df, buildArgs, predefined);
  const plan = planBuild(df, target, { globalArgs, named: namedContexts.names(), file: dockerfilePath });
  const unused = unusedBuildArgs(
    df,
    plan.vertices.map((v) => v.stage),
    buildArgs,
  );
  if (unused.length)
    emit({
      type: 'warning',
      message: `One or more build-args [${unused.join(' ')}] were not consumed`,
      time: Date.now(),
    });
  let executor: Promise<Executor> | undefined;
  emit({
    type: 'build-start',
    stages: df.stages.length,
    steps: df.stages.reduce((n, s) => n + s.instructions.length + 1, 0),
    time: Date.now(),
  });

  const sde = opts.sourceDateEpoch ?? envEpoch();
  const session = { downloads: new Map<string, Promise<Download>>() };
  const caches = await openCaches(opts, engine, emit);
  const state = await solve(
    {
      df,
      dockerfilePath,
      store: engine.store,
      cache: engine.cache,
      layers: engine.layers,
      context,
      executor: () =>
        (executor ??= createExecutor({
          kind: opts.executor ?? executorFromEnv(),
          cgroupParent: cgroupParentOf(engine.store.root),
          pool: true,
        }).then((ex) => {
          if (ex.warning) emit({ type: 'warning', message: ex.warning, time: Date.now() });
          return ex;
        })),
      emit,
      signal: opts.signal,
      buildArgs,
      globalArgs,
      predefinedArgs: predefined,
      platform,
      noCache: opts.noCache ?? false,
      noCacheFilter: new Set(opts.noCacheFilter ?? []),
      sourceDateEpoch: sde,
      secrets: opts.secrets ?? {},
      network: opts.network,
      allow,
      limits,
      run,
      namedContexts,
      downloads: session.downloads,
      downloadLimits: opts.addLimits,
      pull: opts.pull ?? false,
      registry: { ...opts.registry, signal: opts.signal },
      registryCache: caches,
    },
    plan,
  ).finally(async () => {
    await Promise.all([
      hashes.save().catch(() => undefined),
      // the steps' snapshots, committed volatile, made durable with one syncfs (best effort: they
      // are caches of the layers, and until then they still last as long as the boot; a failed
      // syncfs has the snapshotter forget them, a later build unpacks their layers again)
      engine.layers
        .settle()
        .catch((e: unknown) => settleLog('settle failed, volatile snapshots dropped: %s', (e as Error).message)),
      // the executor's background work (cgroup removals) ends before the build does
      executor?.then((ex) => ex.close?.()).catch(() => undefined),
    ]);
    await cleanupDownloads(session.downloads);
  });

  const labels =
    opts.labels && Object.keys(opts.labels).length
      ? { config: { ...state.config.config, Labels: { ...state.config.config.Labels, ...opts.labels } } }
      : {};
  const config: ImageConfig = {
    ...state.config,
    ...labels,
    created: state.created,
    architecture: platform.architecture,
    os: platform.os,
    rootfs: { type: 'layers', diff_ids: state.layers.map((l) => l.diffId) },
  };
  const built = await engine.store.putImage(
    config,
    state.layers.map((l) => ({ mediaType: l.mediaType || MEDIA.layer, digest: l.digest, size: l.size })),
  );
  const stored = opts.squash
    ? await engine.store.loadManifest((await squashImage(engine, built, { sourceDateEpoch: sde })).digest)
    : built;
  for (const t of opts.tags ?? []) await engine.store.tag(t, stored.manifestDigest);
  await pushOutputs(engine.store, stored, opts, emit);
  for (const out of (opts.output ?? []).filter((o) => o.type !== 'registry'))
    await exportImage(
      engine.store,
      stored,
      out,
      opts.tags?.[0],
      (_img, work) => engine.layers.withView(state.layers, work),
      { sourceDateEpoch: sde, signal: opts.signal },
    );
  await exportCaches(caches, opts, engine, state.layers, emit);
  emit({
    type: 'build-done',
    imageId: stored.configDigest,
    digest: stored.manifestDigest,
    durationMs: Date.now() - started,
    time: Date.now(),
    contextFilesHashed: hashes.misses - counted.misses,
    contextHashHits: hashes.hits - counted.hits,
  });
  return {
    imageId: stored.configDigest,
    digest: stored.manifestDigest,
    manifest: stored.manifest,
    config: stored.config,
  };
}

/**
 * Build args no ARG of the stages built (nor a global ARG) declares, sorted, as BuildKit reports
 * them; the proxy args and BuildKit's own BUILDKIT_* options are always consumed.
 */
function unusedBuildArgs(df: Dockerfile, stages: Stage[], buildArgs: Record<string, string>): string[] {
  const declared = new Set<string>(PROXY_ARGS);
  for (const g of df.globalArgs) for (const a of g.args) declared.add(a.key);
  for (const st of stages)
    for (const i of st.instructions) if (i.kind === 'ARG') for (const a of i.args) declared.add(a.key);
  return Object.keys(buildArgs)
    .filter((k) => !declared.has(k) && !k.startsWith('BUILDKIT_'))
    .sort();
}

async function cleanupDownloads(downloads: Map<string, Promise<Download>>): Promise<void> {
  for (const p of downloads.values()) {
    const d = await p.catch(() => undefined);
    if (d) await fsp.rm(d.dir, { recursive: true, force: true }); // the download's own dir, nothing else
  }
}

/** `VLAB_EXECUTOR=auto|builtin|builtin-shell|oci` picks the executor when the caller does not. */
function executorFromEnv(): ExecutorKind {
  const v = process.env.VLAB_EXECUTOR;
  if (v === undefined || v === '') return 'auto';
  if (!(EXECUTOR_KINDS as readonly string[]).includes(v))
    throw new VlabError('E_BAD_ARG', `VLAB_EXECUTOR must be ${EXECUTOR_KINDS.join(', ')}, got "${v}"`);
  return v as ExecutorKind;
}

/** SOURCE_DATE_EPOCH from the environment (the build's and the exports' default). */
export function envEpoch(): number | undefined {
  const v = process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new VlabError('E_BAD_ARG', `SOURCE_DATE_EPOCH must be a non-negative integer, got "${v}"`);
  return n;
}

export { platformString };
