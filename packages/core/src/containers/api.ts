/**
 * What `@vlab/image` exports for containers: `run()`, `containers.*`, `volumes.*`, each on the
 * store at `root` (default: defaultStoreRoot()). The CLI does the same through ContainerService.
 */
import path from 'node:path';
import { defaultStoreRoot } from '../store/paths.ts';
import { ContainerService } from './service.ts';
import { followLogs, readLogs } from './logs.ts';
import { containerOps } from './ops-api.ts';
import type { Container, CreateOptions, LogEntry } from './types.ts';
import type { Volume } from './volumes.ts';

export interface At {
  /** Store root (default $VLAB_ROOT, else /var/lib/vlab as root). */
  root?: string;
}

const services = new Map<string, Promise<ContainerService>>();

/** The container service of a store, opened once per process. */
export function containerService(root = defaultStoreRoot()): Promise<ContainerService> {
  const r = path.resolve(root);
  let s = services.get(r);
  if (!s) {
    s = ContainerService.open(r);
    services.set(r, s);
    s.catch(() => services.delete(r));
  }
  return s;
}

export interface RunOptions extends CreateOptions, At {
  /** Return once it runs (docker run -d); else resolve with its exit code when it has ended. */
  detach?: boolean;
  /** Foreground only: its output (it is in the log as well). */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

/** docker run: create and start; `exitCode` unless detached. */
export async function run(o: RunOptions): Promise<{ id: string; name: string; exitCode?: number }> {
  const svc = await containerService(o.root);
  const r = await svc.run(o, o.detach ? {} : { attach: { onOutput: o.onOutput ?? (() => undefined) } });
  return { id: r.container.config.id, name: r.container.config.name, exitCode: r.exitCode };
}

const on = async <T>(at: At | undefined, fn: (s: ContainerService) => Promise<T>): Promise<T> =>
  fn(await containerService(at?.root));

export const containers = {
  create: (o: CreateOptions & At): Promise<Container> => on(o, (s) => s.create(o)),
  start: (ref: string, o: At = {}) => on(o, (s) => s.start(ref)),
  list: (o: { all?: boolean } & At = {}): Promise<Container[]> => on(o, (s) => s.list(o)),
  inspect: (ref: string, o: At = {}): Promise<Container> => on(o, (s) => s.get(ref)),
  stop: (ref: string, o: { timeout?: number } & At = {}) => on(o, (s) => s.stop(ref, o)),
  kill: (ref: string, o: { signal?: string | number } & At = {}) => on(o, (s) => s.kill(ref, o.signal)),
  wait: (ref: string, o: At = {}): Promise<number> => on(o, (s) => s.wait(ref)),
  restart: (ref: string, o: { timeout?: number } & At = {}) => on(o, (s) => s.restart(ref, o)),
  rename: (ref: string, name: string, o: At = {}) => on(o, (s) => s.rename(ref, name)),
  remove: (ref: string, o: { force?: boolean; volumes?: boolean } & At = {}) => on(o, (s) => s.remove(ref, o)),
  prune: (o: At = {}): Promise<string[]> => on(o, (s) => s.prune()),
  logs: (ref: string, o: { tail?: number } & At = {}): Promise<LogEntry[]> =>
    on(o, async (s) => readLogs(s.records.path((await s.get(ref)).config.id), o)),
  /** logs -f: each entry to `onEntry` until the container has ended and all is read (or `signal`). */
  followLogs: (
    ref: string,
    o: { tail?: number; onEntry: (e: LogEntry) => void; signal?: AbortSignal } & At,
  ): Promise<void> =>
    on(o, async (s) => {
      const id = (await s.get(ref)).config.id;
      const isRunning = async () => (await s.refresh(id)).state.status === 'running';
      await followLogs(s.records.path(id), { ...o, isRunning });
    }),
  ...containerOps(on),
};

export const volumes = {
  create: (name?: string, o: { labels?: Record<string, string> } & At = {}): Promise<Volume> =>
    on(o, (s) => s.volumes.create(name, o)),
  list: (o: At = {}): Promise<Volume[]> => on(o, (s) => s.volumes.list()),
  inspect: (name: string, o: At = {}): Promise<Volume> => on(o, (s) => s.volumes.get(name)),
  remove: (name: string, o: At = {}) => on(o, (s) => s.removeVolume(name)),
  prune: (o: At = {}): Promise<string[]> => on(o, (s) => s.pruneVolumes()),
};
