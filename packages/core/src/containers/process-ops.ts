/**
 * Verbs on a running container's process tree: exec (setns, exec/enter.ts), pause / unpause
 * (the cgroup freezer, exec/freezer.ts) and top (its cgroup's processes, exec/top.ts). Paused is
 * not recorded: the freezer's own state is the truth, read when asked (isPaused).
 */
import { VlabError } from '@vlab/errors';
import { Cgroup, detectCgroupLayout } from '../exec/cgroups.ts';
import { enterContainer, type EnterOptions, type EnterResult } from '../exec/enter.ts';
import { freeze, isFrozen, thaw } from '../exec/freezer.ts';
import { top, type TopResult } from '../exec/top.ts';
import type { Container } from './types.ts';
import type { ContainerService } from './service.ts';
import { sameProcess } from './liveness.ts';

export interface ExecOptions extends EnterOptions {
  /** `K=V` after the container's env (exec -e). */
  env?: string[];
  /** Default: the container's working directory. */
  workdir?: string;
  /** Default: the container's user. */
  user?: string;
  tty?: { rows?: number; cols?: number };
}

/** The container, which must be running (E_CONTAINER_NOT_RUNNING), with its cgroup. */
async function runningWithCgroup(svc: ContainerService, ref: string): Promise<{ c: Container; cg: Cgroup }> {
  const c = await svc.get(ref);
  if (c.state.status !== 'running' || !c.state.cgroup || !sameProcess(c.state.pid, c.state.pidStart))
    throw new VlabError('E_CONTAINER_NOT_RUNNING', `container ${c.config.name} is not running: start it first`);
  return { c, cg: Cgroup.at(await detectCgroupLayout(), c.state.cgroup) };
}

/** Whether a running container's cgroup is frozen (false for one that does not run). */
export async function isPaused(c: Container): Promise<boolean> {
  if (c.state.status !== 'running' || !c.state.cgroup) return false;
  return isFrozen(Cgroup.at(await detectCgroupLayout(), c.state.cgroup)).catch(() => false);
}

/** docker exec: E_CONTAINER_NOT_RUNNING for a stopped one, E_CONTAINER_PAUSED for a paused one. */
export async function execContainer(
  svc: ContainerService,
  ref: string,
  argv: string[],
  opts: ExecOptions = {},
): Promise<EnterResult> {
  const { c, cg } = await runningWithCgroup(svc, ref);
  if (await isFrozen(cg))
    throw new VlabError('E_CONTAINER_PAUSED', `container ${c.config.name} is paused: unpause it before exec`);
  return enterContainer(
    {
      pid: c.state.pid,
      cgroupProcs: cg.procsFiles(),
      argv,
      env: [...c.config.env, ...(opts.env ?? [])],
      cwd: opts.workdir || c.config.workingDir || '/',
      user: opts.user ?? c.config.user,
      tty: opts.tty,
      nofile: c.config.limits.nofile,
    },
    opts,
  );
}

/** docker pause: E_CONTAINER_NOT_RUNNING when it does not run, E_CONTAINER_PAUSED when it is already. */
export async function pauseContainer(svc: ContainerService, ref: string): Promise<void> {
  const { c, cg } = await runningWithCgroup(svc, ref);
  if (await isFrozen(cg)) throw new VlabError('E_CONTAINER_PAUSED', `container ${c.config.name} is already paused`);
  await freeze(cg);
}

/** docker unpause: E_CONTAINER_NOT_PAUSED when it is not paused. */
export async function unpauseContainer(svc: ContainerService, ref: string): Promise<void> {
  const { c, cg } = await runningWithCgroup(svc, ref);
  if (!(await isFrozen(cg))) throw new VlabError('E_CONTAINER_NOT_PAUSED', `container ${c.config.name} is not paused`);
  await thaw(cg);
}

/** Thaws a container's cgroup if frozen: a frozen (v1) process does not die of SIGKILL until then. */
export async function thawIfPaused(c: Container): Promise<void> {
  if (!c.state.cgroup) return;
  const cg = Cgroup.at(await detectCgroupLayout(), c.state.cgroup);
  if (await isFrozen(cg).catch(() => false)) await thaw(cg).catch(() => undefined);
}

/** Runs `fn` with the container paused when it runs (docker commit --pause), thawed after. */
export async function withPaused<T>(c: Container, fn: () => Promise<T>): Promise<T> {
  if (c.state.status !== 'running' || !c.state.cgroup) return fn();
  const cg = Cgroup.at(await detectCgroupLayout(), c.state.cgroup);
  if (await isFrozen(cg)) return fn(); // paused by the user: stays paused
  await freeze(cg);
  try {
    return await fn();
  } finally {
    await thaw(cg);
  }
}

/** docker top. */
export async function topContainer(svc: ContainerService, ref: string): Promise<TopResult> {
  const { c, cg } = await runningWithCgroup(svc, ref);
  return top(cg, c.state.pid);
}
