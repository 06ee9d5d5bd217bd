/**
 * Verbs on a container's filesystem: diff (A/C/D of its writable layer), commit (that layer as a
 * new image) and cp (both ways, in-root). A running container is read through its own mount
 * namespace's root (/proc/PID/root: its volumes and tmpfs included, as docker cp sees them) and
 * its launch spec tells which entries of its layer are the runtime's mountpoints (left out of
 * diff and commit, as docker's init layer hides them); a stopped one's snapshot is mounted for
 * the copy under the container's lock.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { changes, mountAll, unmountAll, type Change } from '@vlab/overlay';
import { VlabError } from '@vlab/errors';
import { specMountpoints } from '../exec/native-spec.ts';
import { commitSnapshot } from '../image/commit.ts';
import type { StoredImage } from '../store/store.ts';
import { copyFromContainer, copyToContainer } from '../fsutil/cp.ts';
import type { Container } from './types.ts';
import type { ContainerService } from './service.ts';
import { ROOTFS } from './start.ts';
import { sameProcess } from './liveness.ts';
import { withPaused } from './process-ops.ts';

const running = (c: Container) => c.state.status === 'running' && sameProcess(c.state.pid, c.state.pidStart);

/** The runtime's mountpoints in a running container's layer (none once it ended: vlab-init removed them). */
async function runtimeMountpoints(
  svc: ContainerService,
  c: Container,
): Promise<{ created: string[]; parents: string[] }> {
  const none = { created: [], parents: [] };
  if (!running(c) || !c.state.runDir) return none;
  const spec = await fsp.readFile(path.join(c.state.runDir, 'spec')).catch(() => undefined);
  return spec ? specMountpoints(spec, svc.records.path(c.config.id, ROOTFS)) : none;
}

/**
 * The container, cleaned up if it ended and nobody did yet (its monitor's exit command may still
 * be on it): what the launcher left in its layer is gone before the layer is read.
 */
async function settled(svc: ContainerService, ref: string): Promise<Container> {
  const c = await svc.get(ref);
  if (running(c) || c.state.cleaned || c.state.status === 'created') return c;
  await svc.cleanup(c.config.id);
  return svc.get(c.config.id);
}

/**
 * The changes of the container's writable layer that are its own, and the paths that are the
 * runtime's: the mountpoints made for it and a dir changed only by them (its mtime comes back at
 * the end). docker keeps both in the init layer under the container's, so neither diff nor commit
 * shows them.
 */
async function ownChanges(svc: ContainerService, c: Container): Promise<{ changes: Change[]; runtime: string[] }> {
  const snaps = await svc.engine.snapshots();
  const mp = await runtimeMountpoints(svc, c);
  const all = await changes(await snaps.diffSource(c.config.snapshotKey), { ignore: mp.created });
  const only = new Set(mp.parents.filter((d) => !all.some((x) => x.path.startsWith(d + '/'))));
  return { changes: all.filter((x) => !(x.kind === 'C' && only.has(x.path))), runtime: [...mp.created, ...only] };
}

/** docker diff: the changes of the container's writable layer, sorted by path. */
export async function diffContainer(svc: ContainerService, ref: string): Promise<Change[]> {
  return (await ownChanges(svc, await settled(svc, ref))).changes;
}

export interface CommitContainerOptions {
  /** `-m`: the history entry's comment. */
  message?: string;
  /** `-a`. */
  author?: string;
  /** `-c`: Dockerfile instructions applied to the new config. */
  changes?: string[];
  /** Default true (docker): a running container is frozen while its layer is read. */
  pause?: boolean;
}

/** docker commit CONTAINER [REF]: E_BAD_REF for an invalid reference, before anything is written. */
export async function commitContainer(
  svc: ContainerService,
  ref: string,
  imageRef?: string,
  opts: CommitContainerOptions = {},
): Promise<StoredImage> {
  const id = (await settled(svc, ref)).config.id;
  return svc.records.locked(id, async () => {
    const c = await svc.refresh(id);
    const base = await svc.engine.store.loadManifest(c.config.imageDigest).catch((e: unknown) => {
      throw new VlabError('E_IMAGE_NOT_FOUND', `the image of container ${c.config.name} is no longer in the store`, {
        cause: e,
      });
    });
    const cfg = c.config;
    const read = async () =>
      commitSnapshot({
        store: svc.engine.store,
        snapshots: await svc.engine.snapshots(),
        snapshotKey: cfg.snapshotKey,
        base,
        config: {
          Env: cfg.env,
          Cmd: cfg.cmd.length ? cfg.cmd : null,
          Entrypoint: cfg.entrypoint.length ? cfg.entrypoint : null,
          WorkingDir: cfg.workingDir,
          User: cfg.user,
          Labels: { ...(base.config.config.Labels ?? {}), ...cfg.labels },
        },
        exclude: running(c) ? (await ownChanges(svc, c)).runtime : [],
        message: opts.message,
        author: opts.author,
        changes: opts.changes,
        ref: imageRef,
      });
    return opts.pause === false ? read() : withPaused(c, read);
  });
}

/**
 * `fn` with the container's root as a host path: /proc/PID/root while it runs, else its snapshot
 * mounted aside (under the container's lock, so no start or rm comes between).
 */
async function withRoot<T>(svc: ContainerService, ref: string, fn: (root: string) => Promise<T>): Promise<T> {
  const c = await settled(svc, ref);
  if (running(c)) return fn(`/proc/${c.state.pid}/root`);
  const id = c.config.id;
  return svc.records.locked(id, async () => {
    const now = await svc.refresh(id);
    if (running(now)) return fn(`/proc/${now.state.pid}/root`);
    const target = svc.records.path(id, `cp-${randomBytes(4).toString('hex')}`);
    await fsp.mkdir(target);
    try {
      await mountAll(await (await svc.engine.snapshots()).mounts(now.config.snapshotKey), target);
      try {
        return await fn(target);
      } finally {
        await unmountAll(target);
      }
    } finally {
      await fsp.rmdir(target).catch(() => undefined);
    }
  });
}

/** docker cp CONTAINER:SRC DEST. */
export function copyFrom(svc: ContainerService, ref: string, src: string, dest: string): Promise<void> {
  return withRoot(svc, ref, (root) => copyFromContainer(root, src, dest));
}

/** docker cp SRC CONTAINER:DEST. */
export function copyTo(svc: ContainerService, ref: string, src: string, dest: string): Promise<void> {
  return withRoot(svc, ref, (root) => copyToContainer(root, src, dest));
}
