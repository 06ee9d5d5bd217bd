/**
 * Starting a container and cleaning up after it. start: mount the writable snapshot, fill new
 * volumes from the image, let the executor prepare the launch (cgroup with the limits, spec),
 * hand the launcher to a monitor and record what runs (pids with their start times, boot id).
 * cleanup (after the end; by the foreground CLI, else by the monitor's exit command, else by the
 * next command that finds it ended): OOM read, cgroup and run dir removed, rootfs unmounted.
 * Both under the container's lock; cleanup is idempotent.
 */
import { once } from 'node:events';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { mountAll, mountScratch, unmountAll } from '@vlab/overlay';
import { VlabError } from '@vlab/errors';
import { cleanupDetached } from '../exec/index.ts';
import { TMP_PREFIX } from '../exec/prepare.ts';
import { Cgroup, detectCgroupLayout, sleep } from '../exec/cgroups.ts';
import type { ExtraMount, RunSpec } from '../exec/types.ts';
import type { Container, ContainerState, StartOptions } from './types.ts';
import type { ContainerService } from './service.ts';
import { bootId, procStart } from './liveness.ts';
import { callerCgroupFiles, startMonitor, vbuildBin } from './monitor.ts';
import { phases } from '../debug/phases.ts';
import { stopAt } from '../debug/stop-at.ts';

export const ROOTFS = 'rootfs';
export const EXIT_FILE = 'exit.json';
/** pid 1, written by the monitor (for vlab-init: runc writes its own in the run dir). */
const INIT_PID_FILE = 'init.pid';

/** Resolves once it runs (detached) or, attached, when it has ended and been cleaned up. */
export async function startContainer(
  svc: ContainerService,
  id: string,
  opts: StartOptions = {},
): Promise<{ exitCode?: number }> {
  const lap = phases('container');
  const mon = await svc.records.locked(id, async () => {
    const c = await svc.refresh(id);
    if (c.state.status === 'running') return undefined; // docker: starting a running one is a no-op
    if (c.state.status === 'removing')
      throw new VlabError('E_CONTAINER_STATE', `container ${c.config.name} is being removed`);
    await cleanupLocked(svc, c);
    lap('lock');
    // the caller died before the start (the warm server's client was killed): a killed direct CLI
    // never gets this far, so nothing is started for nobody
    if (opts.attach?.detachOn?.aborted)
      throw new VlabError('E_ABORTED', `container ${c.config.name} was not started: its caller is gone`);
    return launch(svc, c, opts, lap);
  });
  if (!mon) return {};
  if (!opts.attach) {
    mon.detach();
    return {};
  }
  opts.attach.onStarted?.(id);
  const gone = opts.attach.detachOn;
  const end = gone?.aborted
    ? undefined
    : await (gone ? Promise.race([mon.exited, once(gone, 'abort').then(() => undefined)]) : mon.exited);
  lap('ran');
  if (!end) {
    mon.detach();
    return {};
  }
  await svc.records.locked(id, async () => cleanupLocked(svc, await svc.refresh(id)));
  mon.done();
  lap('cleanup');
  const after = await svc.records.read(id).catch(() => undefined);
  if (after?.config.autoRemove) await svc.remove(id, { force: true, volumes: true }).catch(() => undefined);
  lap('remove');
  return { exitCode: end.exitCode };
}

async function launch(svc: ContainerService, c: Container, opts: StartOptions, lap: (name: string) => void) {
  const { config } = c;
  const dir = svc.records.path(config.id);
  const rootfs = path.join(dir, ROOTFS);
  const snaps = await svc.engine.snapshots();
  // Not cleaned from here on, with the cgroup it makes: a caller killed before the running record
  // leaves one that every cleanup (the monitor's exit command included) frees in full.
  await svc.records.writeState(config.id, {
    ...c.state,
    cleaned: false,
    cgroup: containerCgroup(svc, config.id),
    runDir: undefined,
  });
  await fsp.mkdir(rootfs, { recursive: true });
  // --rm: the upper dir goes with the container, so no sync of the store's filesystem at unmount
  await (config.autoRemove ? mountScratch : mountAll)(await snaps.mounts(config.snapshotKey), rootfs);
  lap('mount');
  let launched: { dir: string; cgroup: string } | undefined;
  let monitor: number | undefined;
  let went = false;
  try {
    const mounts: ExtraMount[] = [];
    for (const m of config.mounts) {
      if (m.type === 'tmpfs')
        mounts.push({ type: 'tmpfs', target: m.target, options: m.options, readonly: m.readonly });
      else if (m.type === 'bind')
        mounts.push({ type: 'bind', source: m.source, target: m.target, readonly: m.readonly });
      else {
        const v = await svc.volumes.create(m.source!, { anonymous: m.anonymous });
        if (!(m as { nocopy?: boolean }).nocopy) await svc.volumes.populate(v.name, rootfs, m.target);
        mounts.push({ type: 'bind', source: v.mountpoint, target: m.target, readonly: m.readonly });
      }
    }
    const spec: RunSpec = {
      rootfs,
      argv: [config.path, ...config.args],
      env: config.env,
      cwd: config.workingDir,
      user: config.user,
      hostname: config.hostname,
      mounts,
      network: config.network,
      ports: config.ports,
      tty: config.tty,
      limits: config.limits,
      readonlyRootfs: config.readonlyRootfs,
    };
    lap('volumes');
    const ex = await svc.executor(config.executor);
    lap('executor');
    if (!ex.prepareDetached)
      throw new VlabError(
        'E_EXEC_UNAVAILABLE',
        `containers need vlab-init or an OCI runtime (this executor is ${ex.name}): run bash scripts/build-native.sh, or VLAB_EXECUTOR=oci`,
      );
    const l = await ex.prepareDetached(spec, { dir, cgroup: containerCgroup(svc, config.id) });
    launched = l;
    lap('prepare');
    const pidFile = l.pidFile ?? path.join(dir, INIT_PID_FILE);
    await Promise.all([EXIT_FILE, INIT_PID_FILE].map((f) => fsp.rm(path.join(dir, f), { force: true })));
    const mon = startMonitor({
      pidFile: l.pidFile ? undefined : pidFile,
      cgroups: await callerCgroupFiles(),
      dir,
      logMaxSize: config.logMaxSize,
      argv: l.argv,
      exitCommand: [process.execPath, vbuildBin(), 'container', 'cleanup', '--root', svc.root, config.id],
      attach: opts.attach,
    });
    stopAt('start-spawned');
    // Running (with its monitor, whose liveness and exit.json tell the rest) before anything of
    // the container runs: a caller killed from here on leaves a record that says what runs.
    const running: ContainerState = {
      ...c.state,
      status: 'running',
      pid: 0,
      pidStart: undefined,
      pidFile,
      monitorPid: mon.pid,
      monitorStart: procStart(mon.pid),
      bootId: bootId(),
      runDir: l.dir,
      cgroup: l.cgroup,
      cleaned: false,
      exitCode: 0,
      oomKilled: false,
      error: undefined,
      startedAt: new Date().toISOString(),
      finishedAt: undefined,
      restartCount: c.state.restartCount, // docker counts restart-policy restarts only (none here)
    };
    monitor = mon.pid;
    await svc.records.writeState(config.id, running);
    stopAt('start-go');
    mon.go();
    went = true;
    const started = await mon.started;
    lap('monitor');
    const pid = l.pidFile ? await pidFromFile(l.pidFile, mon.exited) : started.pid;
    stopAt('start-state');
    await svc.records.writeState(config.id, { ...running, pid, pidStart: procStart(pid) });
    lap('state');
    return mon;
  } catch (e) {
    // After the go the container may run (pid 1 maybe not in its cgroup yet): nothing is freed
    // under it. Its monitor is killed (PDEATHSIG takes the launcher) and the record stays
    // running: the dead monitor ends it at the next refresh, whose cleanup then frees it all.
    if (went) {
      killQuietly(monitor!);
      throw e;
    }
    if (launched) await cleanupDetached(launched).catch(() => undefined);
    await unmountAll(rootfs).catch(() => undefined);
    if (monitor) killQuietly(monitor); // it started nothing: gone without exit.json or exit command
    // a start that failed before its go leaves the record as it was
    await svc.records.writeState(config.id, c.state).catch(() => undefined);
    throw e;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
}

/**
 * The container's pid 1 from the launcher's pid file (runc writes it once the container runs);
 * 0 when the launcher ended without one (the container never ran, or ran and ended first).
 */
async function pidFromFile(file: string, ended: Promise<unknown>): Promise<number> {
  let done = false;
  void ended.then(
    () => (done = true),
    () => (done = true),
  );
  const deadline = Date.now() + 60_000;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const pid = Number(await fsp.readFile(file, 'utf8').catch(() => ''));
    if (Number.isInteger(pid) && pid > 0) return pid;
    if (done) return 0;
    if (Date.now() > deadline)
      throw new VlabError('E_EXEC_SETUP', `the container runtime did not start the container within 60 s (${file})`);
    await sleep(delay);
  }
}

/** The cgroup (path under every hierarchy) a container's start prepares. */
function containerCgroup(svc: ContainerService, id: string): string {
  return `${svc.cgroupParent}/ctr-${id}`;
}

/** After the end: OOM from the cgroup, cgroup and run dir gone, rootfs unmounted. Caller holds the lock. */
export async function cleanupLocked(svc: ContainerService, c: Container): Promise<Container> {
  if (c.state.status === 'running' || c.state.cleaned) return c;
  let oomKilled = c.state.oomKilled;
  // exited without one recorded: a first start whose caller died before it wrote the record
  // (its exit.json ended it), after its cgroup was made
  const cgroup = c.state.cgroup ?? (c.state.status === 'exited' ? containerCgroup(svc, c.config.id) : undefined);
  if (cgroup) {
    const layout = await detectCgroupLayout();
    const stats = await Cgroup.at(layout, cgroup)
      .stats()
      .catch(() => undefined);
    if (stats?.oomKills) oomKilled = true;
    for (const dir of c.state.runDir ? [c.state.runDir] : await runDirs(svc.records.path(c.config.id)))
      await cleanupDetached({ dir, cgroup });
  }
  await unmountAll(path.join(svc.records.path(c.config.id), ROOTFS));
  const state = { ...c.state, cleaned: true, oomKilled };
  await svc.records.writeState(c.config.id, state);
  return { config: c.config, state };
}

/**
 * The executor's run dirs in a container's dir, for a record that names none (its starter died
 * before the running record): the run-none placeholder when there is none, so the cgroup still goes.
 */
async function runDirs(dir: string): Promise<string[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const found = names.filter((n) => n.startsWith(TMP_PREFIX)).map((n) => path.join(dir, n));
  return found.length ? found : [path.join(dir, 'run-none')];
}
