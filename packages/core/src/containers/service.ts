/**
 * The container verbs on one store: create, start, stop, kill, wait, restart, rename, remove,
 * prune, list, inspect. The CLI (cli/containers.ts) only parses flags and prints these results.
 */
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { openEngine, type Engine } from '../api.ts';
import { createExecutor, type ExecutorKind } from '../exec/index.ts';
import { Cgroup, detectCgroupLayout, sleep } from '../exec/cgroups.ts';
import type { Executor } from '../exec/types.ts';
import { layersOf } from '../solve/base.ts';
import { cgroupParentOf, defaultStoreRoot } from '../store/paths.ts';
import type { Container, ContainerState, CreateOptions, StartOptions } from './types.ts';
import { ContainerRecords } from './records.ts';
import { VolumeStore, type Volume } from './volumes.ts';
import { initPid, observedState, sameProcess } from './liveness.ts';
import { checkOptions, executorKind, makeConfig } from './create.ts';
import { cleanupLocked, EXIT_FILE, startContainer } from './start.ts';
import { signalName } from './signals.ts';
import { phases } from '../debug/phases.ts';
import { stopAt } from '../debug/stop-at.ts';
import { isPaused, thawIfPaused } from './process-ops.ts';

export class ContainerService {
  readonly records: ContainerRecords;
  readonly volumes: VolumeStore;
  readonly cgroupParent: string;
  private readonly ex = new Map<ExecutorKind, Promise<Executor>>();

  private constructor(
    readonly root: string,
    readonly engine: Engine,
  ) {
    this.records = new ContainerRecords(root);
    this.volumes = new VolumeStore(root);
    this.cgroupParent = cgroupParentOf(root);
  }

  static async open(root = defaultStoreRoot()): Promise<ContainerService> {
    const r = path.resolve(root);
    return new ContainerService(r, await openEngine(r));
  }

  /** The executor of `kind` (a container's own, else VLAB_EXECUTOR, else auto), made once. */
  executor(kind: ExecutorKind = executorKind()): Promise<Executor> {
    let ex = this.ex.get(kind);
    if (!ex) {
      ex = createExecutor({ kind, cgroupParent: this.cgroupParent });
      this.ex.set(kind, ex);
      ex.catch(() => this.ex.delete(kind));
    }
    return ex;
  }

  /** A new container (not started): its record and its writable snapshot on the image. */
  async create(o: CreateOptions): Promise<Container> {
    const img = await this.engine.store.resolve(o.image);
    if (!img)
      throw new VlabError(
        'E_IMAGE_NOT_FOUND',
        `unable to find image '${o.image}' in the store: build, load or import it first`,
      );
    const checked = await checkOptions(img, o);
    const parent = await this.engine.layers.ensureSnapshot(layersOf(img));
    const snaps = await this.engine.snapshots();
    const c = await this.records.create(o.name, (id, name) => makeConfig(id, name, img, o, checked));
    try {
      await snaps.prepare(c.config.snapshotKey, parent);
    } catch (e) {
      await this.records.remove(c.config.id).catch(() => undefined);
      throw e;
    }
    return c;
  }

  /**
   * The record as it is now (an ended tree is seen and recorded, a missing pid 1 filled in). A
   * change is written under the container's lock, from a record read again under it: a refresh
   * that read a record since replaced (ended and cleaned, started anew) writes nothing stale.
   */
  async refresh(id: string): Promise<Container> {
    const c = await this.records.read(id);
    const next = await this.observed(id, c);
    if (!next) return c;
    stopAt('refresh-write');
    if (this.records.holds(id)) return this.settle(id, c, next);
    return this.records.locked(id, async () => {
      const now = await this.records.read(id);
      const again = await this.observed(id, now);
      return again ? this.settle(id, now, again) : now;
    });
  }

  private async observed(id: string, c: Container): Promise<ContainerState | undefined> {
    const seen = await observedState(c.state, this.records.path(id, EXIT_FILE));
    if (seen) return seen;
    const init = await initPid(c.state);
    return init && { ...c.state, ...init };
  }

  /** Records `state`, seen from `c` (the caller holds the lock). */
  private async settle(id: string, c: Container, state: ContainerState): Promise<Container> {
    // Its monitor died: an OCI runtime's container is not the launcher's child (no PDEATHSIG
    // reaches it) and may outlive it; killed here, so that nothing runs that is shown as exited.
    if (c.state.status === 'running' && state.status === 'exited' && state.exitCode === -1 && c.state.cgroup)
      await Cgroup.at(await detectCgroupLayout(), c.state.cgroup)
        .killAll()
        .catch(() => undefined);
    await this.records.writeState(id, state);
    return { config: c.config, state };
  }

  /** The record as it is now, with whether it is paused. */
  async get(ref: string): Promise<Container> {
    return this.withPausedFlag(await this.refresh(await this.records.resolve(ref)));
  }

  private async withPausedFlag(c: Container): Promise<Container> {
    return c.state.status === 'running' ? { ...c, paused: await isPaused(c) } : c;
  }

  /** Running ones, or all (`ps -a`), newest first. */
  async list(opts: { all?: boolean } = {}): Promise<Container[]> {
    const out: Container[] = [];
    for (const id of await this.records.ids()) {
      const c = await this.refresh(id).catch(() => undefined);
      if (c && (opts.all || c.state.status === 'running')) out.push(await this.withPausedFlag(c));
    }
    return out.sort((a, b) => b.config.created.localeCompare(a.config.created));
  }

  start(ref: string, opts: StartOptions = {}): Promise<{ exitCode?: number }> {
    return this.records.resolve(ref).then((id) => startContainer(this, id, opts));
  }

  /** `run`: create, then start (attached: resolves with the exit code when it has ended). */
  async run(o: CreateOptions, opts: StartOptions = {}): Promise<{ container: Container; exitCode?: number }> {
    const lap = phases('container');
    const c = await this.create(o);
    lap('create');
    try {
      const r = await startContainer(this, c.config.id, opts);
      return { container: c, exitCode: r.exitCode };
    } catch (e) {
      if (o.autoRemove) await this.remove(c.config.id, { force: true, volumes: true }).catch(() => undefined);
      throw e;
    }
  }

  private async running(ref: string): Promise<Container> {
    const c = await this.get(ref);
    if (c.state.status !== 'running')
      throw new VlabError('E_CONTAINER_NOT_RUNNING', `container ${c.config.name} is not running`);
    return c;
  }

  /** Sends a signal to the container's pid 1 (never to a pid reused by another process). */
  async kill(ref: string, signal: string | number = 'SIGKILL'): Promise<void> {
    const sig = signalName(signal);
    const c = await this.running(ref);
    if (!sameProcess(c.state.pid, c.state.pidStart)) return; // ended just now
    process.kill(c.state.pid, sig);
    await thawIfPaused(c); // a paused one gets it once thawed, as docker kill does
  }

  /** docker stop: the stop signal, then after `timeout` s SIGKILL to everything in its cgroup. */
  async stop(ref: string, opts: { timeout?: number } = {}): Promise<void> {
    const c = await this.running(ref);
    const timeout = opts.timeout ?? c.config.stopTimeout;
    if (sameProcess(c.state.pid, c.state.pidStart)) process.kill(c.state.pid, c.config.stopSignal as NodeJS.Signals);
    await thawIfPaused(c);
    if (await this.waitEnd(c.config.id, timeout * 1000)) return;
    await killContainer(c);
    if (!(await this.waitEnd(c.config.id, 10_000)))
      throw new VlabError('E_CONTAINER_STATE', `container ${c.config.name} did not stop after SIGKILL`);
  }

  private async waitEnd(id: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      if ((await this.refresh(id)).state.status !== 'running') return true;
      if (Date.now() >= deadline) return false;
      await sleep(delay);
    }
  }

  /** docker wait: blocks until it is not running; its exit code. */
  async wait(ref: string, opts: { signal?: AbortSignal } = {}): Promise<number> {
    const id = await this.records.resolve(ref);
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      const c = await this.refresh(id);
      if (c.state.status !== 'running') return c.state.exitCode;
      if (opts.signal?.aborted) throw new VlabError('E_ABORTED', 'wait aborted');
      await sleep(delay);
    }
  }

  async restart(ref: string, opts: { timeout?: number } = {}): Promise<void> {
    const c = await this.get(ref);
    if (c.state.status === 'running') await this.stop(c.config.id, opts);
    await this.start(c.config.id);
  }

  rename(ref: string, name: string): Promise<void> {
    return this.records.resolve(ref).then((id) => this.records.rename(id, name));
  }

  /** Cleanup after the end (the monitor's exit command; idempotent), and --rm's removal. */
  async cleanup(ref: string): Promise<void> {
    const id = await this.records.resolve(ref);
    const c = await this.records.locked(id, async () => cleanupLocked(this, await this.refresh(id)));
    if (c.config.autoRemove && c.state.status !== 'running') await this.remove(id, { volumes: true });
  }

  /** docker rm: a running one needs `force` (then SIGKILL); `volumes` also drops its anonymous volumes. */
  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<Container> {
    const id = await this.records.resolve(ref);
    let c = await this.get(id);
    if (c.state.status === 'running') {
      if (c.paused && !opts.force)
        throw new VlabError(
          'E_CONTAINER_PAUSED',
          `you cannot remove a paused container ${c.config.id.slice(0, 12)}: unpause and then stop it, or use rm -f`,
        );
      if (!opts.force)
        throw new VlabError(
          'E_CONTAINER_RUNNING',
          `you cannot remove a running container ${c.config.id.slice(0, 12)}: stop it first, or use rm -f`,
        );
      await killContainer(c, 0);
      await thawIfPaused(c); // SIGKILL reaches a frozen v1 task once it is thawed
      await killContainer(c);
      await this.waitEnd(id, 10_000);
    }
    c = await this.records.locked(id, async () => {
      const now = await cleanupLocked(this, await this.refresh(id));
      if (now.state.status === 'running')
        throw new VlabError('E_CONTAINER_RUNNING', `container ${now.config.name} is still running`);
      await this.records.writeState(id, { ...now.state, status: 'removing' });
      const snaps = await this.engine.snapshots();
      if (await snaps.stat(now.config.snapshotKey)) await snaps.remove(now.config.snapshotKey);
      await this.records.remove(id);
      return now;
    });
    if (opts.volumes)
      for (const m of c.config.mounts)
        if (m.type === 'volume' && m.anonymous && m.source && !(await this.volumeUsers(m.source)).length)
          await this.volumes.remove(m.source).catch(() => undefined);
    return c;
  }

  /** What docker container prune removes: every container that is not running (also what `system df` sizes). */
  async prunableContainers(): Promise<Container[]> {
    return (await this.list({ all: true })).filter((c) => c.state.status !== 'running');
  }

  /** docker container prune: every container that is not running. */
  async prune(): Promise<string[]> {
    const gone: string[] = [];
    for (const c of await this.prunableContainers()) {
      await this.remove(c.config.id);
      gone.push(c.config.id);
    }
    return gone;
  }

  /** Containers whose mounts name volume `name`. */
  async volumeUsers(name: string): Promise<string[]> {
    const out: string[] = [];
    for (const id of await this.records.ids()) {
      const c = await this.records.read(id).catch(() => undefined);
      if (c?.config.mounts.some((m) => m.type === 'volume' && m.source === name)) out.push(id);
    }
    return out;
  }

  /** docker volume rm: E_VOLUME_IN_USE while a container (running or not) has it. */
  async removeVolume(name: string): Promise<void> {
    await this.volumes.get(name);
    const users = await this.volumeUsers(name);
    if (users.length)
      throw new VlabError(
        'E_VOLUME_IN_USE',
        `remove ${name}: volume is in use - [${users.map((u) => u.slice(0, 12)).join(', ')}]: remove those containers first`,
      );
    await this.volumes.remove(name);
  }

  /** What docker volume prune (20.10) removes: every volume no container uses (also what `system df` sizes). */
  async prunableVolumes(): Promise<Volume[]> {
    const out: Volume[] = [];
    for (const v of await this.volumes.list()) if (!(await this.volumeUsers(v.name)).length) out.push(v);
    return out;
  }

  /** docker volume prune (20.10): every volume no container uses. */
  async pruneVolumes(): Promise<string[]> {
    const gone: string[] = [];
    for (const v of await this.prunableVolumes()) {
      await this.volumes.remove(v.name);
      gone.push(v.name);
    }
    return gone;
  }
}

/**
 * SIGKILL to pid 1 (its pid namespace dies with it) and to everything in its cgroup. Pid 1 is
 * killed by pid too: vlab-init moves it into the cgroup while it mounts, so right after `run -d`
 * the cgroup can still be empty while pid 1 exists (it runs nothing of the user's before it is in).
 */
async function killContainer(c: Container, timeoutMs?: number): Promise<void> {
  if (c.state.pid && sameProcess(c.state.pid, c.state.pidStart)) {
    try {
      process.kill(c.state.pid, 'SIGKILL');
    } catch {
      /* ended just now */
    }
  }
  if (c.state.cgroup) await Cgroup.at(await detectCgroupLayout(), c.state.cgroup).killAll(timeoutMs);
}
