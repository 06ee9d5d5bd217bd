/**
 * A container's config from its image and the run options, as docker combines them:
 * - `--entrypoint` replaces the image's Entrypoint and drops its Cmd; CMD… replaces Cmd;
 * - Env: `--env-file` lines and `-e` first (`-e K` takes K from our environment, or drops it
 *   when unset there), then the image's that they did not name;
 * - WorkingDir (`-w`, else the image's, else /), User (`-u`, else the image's), StopSignal;
 * - the hostname defaults to the short id; each image VOLUME not covered by a mount gets an
 *   anonymous volume.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import { VlabError } from '@vlab/errors';
import { parseSize, runLimits } from '../exec/limits.ts';
import type { Limits } from '../exec/types.ts';
import { EXECUTOR_KINDS, type ExecutorKind } from '../exec/index.ts';
import type { StoredImage } from '../store/store.ts';
import type { ContainerConfig, ContainerMount, CreateOptions } from './types.ts';
import { newId, shortId } from './names.ts';
import { signalName } from './signals.ts';
import { parsePort } from '../exec/network.ts';
import { containerPath, parseMountFlag, parseTmpfsFlag, parseVolumeFlag } from './mount-specs.ts';

/** docker's default json-file cap is none; ours keeps a runaway container from filling the store. */
export const DEFAULT_LOG_MAX = 10 * 1024 * 1024;

/** Everything about the config that can be checked before an id is made (bad input fails early). */
export interface Checked {
  argv: string[];
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string;
  limits: Limits;
  mounts: (ContainerMount & { nocopy?: boolean })[];
  stopSignal: string;
  logMaxSize: number;
}

export async function checkOptions(img: StoredImage, o: CreateOptions): Promise<Checked> {
  const ic = img.config.config ?? {};
  const entrypoint = o.entrypoint ?? ic.Entrypoint ?? [];
  const cmd = o.cmd?.length ? o.cmd : o.entrypoint ? [] : (ic.Cmd ?? []);
  const argv = [...entrypoint, ...cmd];
  if (!argv.length)
    throw new VlabError('E_NO_COMMAND', `no command specified: image ${o.image} has no Entrypoint or Cmd, give one`);
  if (o.publish?.length && o.network !== 'private')
    throw new VlabError('E_BAD_ARG', `publishing ports (-p) needs --network private, not ${o.network ?? 'none'}`);
  for (const p of o.publish ?? []) parsePort(p);
  const workingDir = o.workingDir || ic.WorkingDir || '/';
  if (!workingDir.startsWith('/'))
    throw new VlabError(
      'E_BAD_ARG',
      `the working directory '${workingDir}' is invalid, it needs to be an absolute path`,
    );
  const env = mergeEnv(ic.Env ?? [], o.env ?? []);
  const limits = runLimits({ memory: o.memory, pidsLimit: o.pidsLimit }, { root: false });
  if (o.cpus !== undefined) Object.assign(limits, cpuLimits(o.cpus));
  const mounts = [
    ...(o.volumes ?? []).map(parseVolumeFlag),
    ...(o.mounts ?? []).map(parseMountFlag),
    ...(o.tmpfs ?? []).map(parseTmpfsFlag),
  ];
  const targets = new Set<string>();
  for (const m of mounts) {
    if (targets.has(m.target)) throw new VlabError('E_VOLUME_PATH', `duplicate mount point: ${m.target}`);
    targets.add(m.target);
  }
  for (const v of Object.keys(ic.Volumes ?? {})) {
    const target = containerPath(v, 'image VOLUME');
    if (!targets.has(target)) mounts.push({ type: 'volume', target, anonymous: true });
  }
  for (const m of mounts) if (m.anonymous) m.source = newId(); // made at the first start
  for (const m of mounts)
    if (m.type === 'bind' && (await fsp.stat(m.source!).catch(() => undefined)) === undefined)
      throw new VlabError('E_VOLUME_PATH', `bind source path does not exist: ${m.source}`);
  return {
    argv,
    entrypoint,
    cmd,
    env,
    workingDir,
    limits,
    mounts,
    stopSignal: signalName(o.stopSignal ?? ic.StopSignal ?? 'SIGTERM'),
    logMaxSize: o.logMaxSize === undefined ? DEFAULT_LOG_MAX : parseSize(o.logMaxSize, 'log max-size'),
  };
}

/** VLAB_EXECUTOR (auto, builtin, builtin-shell, oci), as for builds. */
export function executorKind(v = process.env.VLAB_EXECUTOR): ExecutorKind {
  const kind = (v || 'auto') as ExecutorKind;
  if (!EXECUTOR_KINDS.includes(kind))
    throw new VlabError('E_BAD_ARG', `VLAB_EXECUTOR must be ${EXECUTOR_KINDS.join(', ')}, got "${kind}"`);
  return kind;
}

export function makeConfig(id: string, name: string, img: StoredImage, o: CreateOptions, c: Checked): ContainerConfig {
  return {
    id,
    name,
    image: o.image,
    imageDigest: img.manifestDigest,
    imageId: img.configDigest,
    path: c.argv[0]!,
    args: c.argv.slice(1),
    entrypoint: c.entrypoint,
    cmd: c.cmd,
    env: c.env,
    workingDir: c.workingDir,
    user: o.user ?? img.config.config?.User ?? '',
    hostname: o.hostname || shortId(id),
    readonlyRootfs: o.readonlyRootfs ?? false,
    limits: c.limits,
    mounts: c.mounts.map((m) => ({ ...m })),
    network: o.network ?? 'none',
    ...(o.publish?.length ? { ports: o.publish.map(parsePort) } : {}),
    ...(o.tty ? { tty: o.tty === true ? {} : o.tty } : {}),
    stopSignal: c.stopSignal,
    executor: executorKind(o.executor),
    stopTimeout: o.stopTimeout ?? 10,
    autoRemove: o.autoRemove ?? false,
    logMaxSize: c.logMaxSize,
    labels: { ...(img.config.config?.Labels ?? {}), ...(o.labels ?? {}) },
    snapshotKey: `ctr-${id}`,
    created: new Date().toISOString(),
  };
}

/**
 * docker's merge (daemon/create.go `merge`): the run's variables first (`-e K=V` again replaces
 * K where it stands; `-e K` takes K from `env`, or drops it when unset there), then the image's
 * whose key the run did not name.
 */
export function mergeEnv(base: string[], overrides: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  const named = new Set<string>();
  const key = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);
  for (const o of overrides) {
    const k = key(o);
    if (!k) throw new VlabError('E_BAD_ARG', `invalid environment variable: ${o}`);
    named.add(k);
    const value = o.includes('=') ? o : env[k] !== undefined ? `${k}=${env[k]}` : undefined;
    const at = out.findIndex((e) => key(e) === k);
    if (value === undefined) {
      if (at >= 0) out.splice(at, 1);
    } else if (at >= 0) out[at] = value;
    else out.push(value);
  }
  return [...out, ...base.filter((e) => !named.has(key(e)))];
}

/** `--env-file`: K=V lines, `#` comments and blank lines skipped, `K` alone from our environment. */
export async function readEnvFile(file: string): Promise<string[]> {
  const text = await fsp.readFile(file, 'utf8').catch((e: Error) => {
    throw new VlabError('E_BAD_ARG', `cannot read env file ${file}: ${e.message}`);
  });
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/^\s+/, ''))
    .filter((l) => l && !l.startsWith('#'));
}

/** docker --cpus: 0.01 up to the host's CPUs, as quota per 100 ms period. */
function cpuLimits(v: number | string): Limits {
  const n = Number(v);
  const max = os.availableParallelism();
  if (!Number.isFinite(n) || n < 0.01 || n > max)
    throw new VlabError(
      'E_BAD_ARG',
      `range of CPUs is from 0.01 to ${max}.00, as there are only ${max} CPUs available`,
    );
  return { cpuQuota: Math.round(n * 100_000), cpuPeriod: 100_000 };
}
