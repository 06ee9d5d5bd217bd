/**
 * Container records on disk (types.ts has the layout). Safe under concurrent CLIs:
 * - create: the record is written into a temp dir and renamed into place; its name is claimed
 *   first by an exclusive create of `.names/<name>` (O_EXCL), so of two `run --name x` one wins
 *   and the other gets E_NAME_IN_USE, and no half-written container is ever listed;
 * - state.json changes are read-modify-write under the container's lock file, written atomically;
 * - reads need no lock: every file they read is replaced whole (rename).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { VlabError } from '@vlab/errors';
import { AsyncLocalStorage } from 'node:async_hooks';
import { mountsUnder, withFileLock } from '@vlab/overlay';
import { writeAtomic } from '../store/store.ts';
import type { Container, ContainerConfig, ContainerState } from './types.ts';
import { checkName, newId, randomName } from './names.ts';

const NAMES = '.names';
/** A name claim whose container never appeared (its creator died between claim and rename). */
const STALE_CLAIM_MS = 60_000;
/** The lock files the current async call chain holds (ContainerRecords.locked). */
const heldLocks = new AsyncLocalStorage<Set<string>>();

export function initialState(): ContainerState {
  return { status: 'created', pid: 0, exitCode: 0, oomKilled: false, restartCount: 0 };
}

export class ContainerRecords {
  readonly dir: string;

  constructor(readonly storeRoot: string) {
    this.dir = path.join(storeRoot, 'containers');
  }

  path(id: string, ...parts: string[]): string {
    return path.join(this.dir, id, ...parts);
  }

  /**
   * Writes a new container: `make` gets the id and name chosen here and returns its config.
   * E_NAME_IN_USE when `name` is taken.
   */
  async create(name: string | undefined, make: (id: string, name: string) => ContainerConfig): Promise<Container> {
    await fsp.mkdir(path.join(this.dir, NAMES), { recursive: true, mode: 0o700 });
    const id = newId();
    let chosen: string;
    if (name !== undefined) {
      chosen = checkName(name);
      await this.claim(chosen, id);
    } else {
      for (let attempt = 0; ; attempt++) {
        chosen = randomName(attempt);
        try {
          await this.claim(chosen, id);
          break;
        } catch (e) {
          if (attempt >= 20 || !(e instanceof VlabError && e.code === 'E_NAME_IN_USE')) throw e;
        }
      }
    }
    const config = make(id, chosen);
    const state = initialState();
    const tmp = path.join(this.dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.mkdir(tmp, { mode: 0o700 });
      await fsp.writeFile(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2));
      await fsp.writeFile(path.join(tmp, 'state.json'), JSON.stringify(state, null, 2));
      await fsp.rename(tmp, this.path(id));
    } catch (e) {
      await fsp.rm(tmp, { recursive: true, force: true });
      await this.unclaim(chosen, id);
      throw e;
    }
    return { config, state };
  }

  private async claim(name: string, id: string): Promise<void> {
    const file = path.join(this.dir, NAMES, name);
    for (let tries = 0; ; tries++) {
      try {
        await fsp.writeFile(file, id, { flag: 'wx', mode: 0o600 });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const owner = await fsp.readFile(file, 'utf8').catch(() => '');
      const st = await fsp.stat(file).catch(() => undefined);
      const orphan = tries === 0 && st && Date.now() - st.mtimeMs > STALE_CLAIM_MS && !(await this.hasRecord(owner));
      if (!orphan)
        throw new VlabError(
          'E_NAME_IN_USE',
          `the container name "${name}" is already in use by container ${owner.slice(0, 12) || '(being created)'}: remove or rename that container, or choose another name`,
        );
      await fsp.rm(file, { force: true });
    }
  }

  private async unclaim(name: string, id: string): Promise<void> {
    const file = path.join(this.dir, NAMES, name);
    if ((await fsp.readFile(file, 'utf8').catch(() => '')) === id) await fsp.rm(file, { force: true });
  }

  private async hasRecord(id: string): Promise<boolean> {
    return /^[0-9a-f]{64}$/.test(id) && exists(this.path(id));
  }

  /** Every container id on disk (complete records only). */
  async ids(): Promise<string[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).sort();
  }

  /** Id of a container by full id, name, or a unique id prefix; E_CONTAINER_NOT_FOUND otherwise. */
  async resolve(ref: string): Promise<string> {
    const r = ref.startsWith('/') ? ref.slice(1) : ref;
    if (/^[0-9a-f]{64}$/.test(r) && (await exists(this.path(r)))) return r;
    const byName = await fsp.readFile(path.join(this.dir, NAMES, r), 'utf8').catch(() => undefined);
    if (byName && (await this.hasRecord(byName))) return byName;
    if (/^[0-9a-f]+$/.test(r)) {
      const hits = (await this.ids()).filter((id) => id.startsWith(r));
      if (hits.length === 1) return hits[0]!;
      if (hits.length > 1)
        throw new VlabError('E_BAD_ARG', `multiple containers found with id prefix "${r}": give more digits`);
    }
    throw new VlabError('E_CONTAINER_NOT_FOUND', `no such container: ${ref}`);
  }

  async read(id: string): Promise<Container> {
    try {
      const [config, state] = await Promise.all(
        ['config.json', 'state.json'].map((f) => fsp.readFile(this.path(id, f), 'utf8')),
      );
      return { config: JSON.parse(config!) as ContainerConfig, state: JSON.parse(state!) as ContainerState };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new VlabError('E_CONTAINER_NOT_FOUND', `no such container: ${id}`, { cause: e });
      throw new VlabError('E_STORE', `the record of container ${id} is unreadable: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /** Run `fn` holding the container's lock (one state change at a time). */
  locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const lock = this.path(id, 'lock');
    const held = new Set(heldLocks.getStore());
    held.add(lock);
    return withFileLock(lock, () => heldLocks.run(held, fn));
  }

  /** Whether the caller runs inside `locked(id)` (the lock is not reentrant: taking it again would wait on itself). */
  holds(id: string): boolean {
    return !!heldLocks.getStore()?.has(this.path(id, 'lock'));
  }

  async writeState(id: string, state: ContainerState): Promise<void> {
    await writeAtomic(this.path(id, 'state.json'), JSON.stringify(state, null, 2));
  }

  async writeConfig(config: ContainerConfig): Promise<void> {
    await writeAtomic(this.path(config.id, 'config.json'), JSON.stringify(config, null, 2));
  }

  /** New name: claimed first (E_NAME_IN_USE), then the config, then the old claim goes. */
  async rename(id: string, newName: string): Promise<void> {
    const name = checkName(newName);
    await this.locked(id, async () => {
      const { config } = await this.read(id);
      if (config.name === name) return;
      await this.claim(name, id);
      await this.writeConfig({ ...config, name });
      await this.unclaim(config.name, id);
    });
  }

  /** Drops the record and its name (the caller has removed the snapshot, mounts and volumes). */
  async remove(id: string): Promise<void> {
    const { config } = await this.read(id);
    // never a recursive delete through a mount (it would delete what is mounted there)
    const mounts = mountsUnder(this.path(id));
    if (mounts.length)
      throw new VlabError(
        'E_CONTAINER_STATE',
        `container ${config.name} still has mounts (${mounts.join(', ')}): unmount them or run vbuild fsck --fix, then rm again`,
      );
    // renamed away first: a concurrent reader sees it whole or not at all
    const gone = path.join(this.dir, `.rm-${process.pid}-${id}`);
    await fsp.rename(this.path(id), gone);
    await this.unclaim(config.name, id);
    await fsp.rm(gone, { recursive: true, force: true });
  }

  /** Name claims without a container (fsck). */
  async orphanNames(): Promise<string[]> {
    const dir = path.join(this.dir, NAMES);
    const out: string[] = [];
    for (const n of await fsp.readdir(dir).catch(() => [] as string[])) {
      const owner = await fsp.readFile(path.join(dir, n), 'utf8').catch(() => '');
      const st = await fsp.stat(path.join(dir, n)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > STALE_CLAIM_MS && !(await this.hasRecord(owner))) out.push(path.join(dir, n));
    }
    return out;
  }
}

export async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(
    () => true,
    () => false,
  );
}

/** Ids of the containers made from image (manifest digest) `digest` (rmi, gc). */
export async function imageUsers(storeRoot: string, digest: string): Promise<string[]> {
  return (await containerImages(storeRoot)).filter((u) => u.imageDigest === digest).map((u) => u.id);
}

/** Every container's id, image manifest digest and snapshot key: what gc and fsck keep or check. */
export async function containerImages(
  storeRoot: string,
): Promise<{ id: string; imageDigest: string; snapshotKey: string }[]> {
  const r = new ContainerRecords(storeRoot);
  const out = [];
  for (const id of await r.ids()) {
    const c = await r.read(id).catch(() => undefined);
    if (c) out.push({ id, imageDigest: c.config.imageDigest, snapshotKey: c.config.snapshotKey });
  }
  return out;
}
