/**
 * What `vbuild fsck` checks about containers: a writable snapshot (`ctr-<id>`) whose container is
 * gone, a rootfs still mounted or a cgroup still there after the container ended (its monitor was
 * killed before the cleanup), a record that cannot be read, a name claim without a container.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createSnapshotter, isMounted } from '@vlab/overlay';
import { Cgroup, detectCgroupLayout } from '../exec/cgroups.ts';
import { cgroupParentOf } from '../store/paths.ts';
import { ContainerRecords } from './records.ts';
import { observedState, sameProcess } from './liveness.ts';
import type { Container } from './types.ts';

export type ContainerFsckKind =
  | 'container-invalid'
  | 'container-snapshot-orphan'
  | 'container-snapshot-missing'
  | 'container-not-cleaned'
  | 'container-cgroup-orphan'
  | 'container-name-orphan';

export interface ContainerProblem {
  kind: ContainerFsckKind;
  target: string;
  message: string;
  fix?: () => Promise<void>;
}

export async function checkContainers(root: string): Promise<ContainerProblem[]> {
  const records = new ContainerRecords(root);
  const out: ContainerProblem[] = [];
  const live = new Map<string, Container>();
  const settledIds = new Set<string>();
  for (const id of await records.ids()) {
    const c = await records.read(id).catch((e: Error) => {
      out.push({ kind: 'container-invalid', target: records.path(id), message: e.message });
      return undefined;
    });
    if (!c) continue;
    const state = (await observedState(c.state, records.path(id, 'exit.json'))) ?? c.state;
    live.set(id, { config: c.config, state });
    const rootfs = records.path(id, 'rootfs');
    // ended, and its monitor (which runs the cleanup as its exit command) is gone too
    const settled = state.status !== 'running' && !sameProcess(state.monitorPid, state.monitorStart);
    if (settled) settledIds.add(id);
    // finishedAt alone: a start whose record was never written, ended by its exit.json
    if (settled && (!state.cleaned || isMounted(rootfs)) && (state.startedAt || state.finishedAt)) {
      out.push({
        kind: 'container-not-cleaned',
        target: id,
        message: `container ${c.config.name} ended but its ${isMounted(rootfs) ? 'rootfs is still mounted' : 'cgroup and run dir were not removed'} (its monitor died?)`,
        fix: async () => {
          const { ContainerService } = await import('./service.ts');
          await (await ContainerService.open(root)).cleanup(id);
        },
      });
    }
  }
  const snapDir = path.join(root, 'snapshots');
  if (await fsp.stat(snapDir).catch(() => undefined)) {
    const snaps = await createSnapshotter(snapDir);
    const keys = new Set((await snaps.walk()).map((s) => s.key));
    for (const key of keys) {
      const m = /^ctr-([0-9a-f]{64})$/.exec(key);
      if (m && !live.has(m[1]!))
        out.push({
          kind: 'container-snapshot-orphan',
          target: key,
          message: 'writable snapshot of a container that no longer exists',
          fix: () => snaps.remove(key),
        });
    }
    for (const [id, c] of live)
      if (!keys.has(c.config.snapshotKey))
        out.push({
          kind: 'container-snapshot-missing',
          target: id,
          message: `container ${c.config.name} has lost its writable snapshot ${c.config.snapshotKey} (not repairable: rm it)`,
        });
  }
  out.push(...(await orphanContainerCgroups(root, (id) => !live.has(id) || settledIds.has(id))));
  for (const f of await records.orphanNames())
    out.push({
      kind: 'container-name-orphan',
      target: f,
      message: 'name claim of a container that was never created',
      fix: () => fsp.rm(f, { force: true }),
    });
  return out;
}

async function orphanContainerCgroups(root: string, orphan: (id: string) => boolean): Promise<ContainerProblem[]> {
  const layout = await detectCgroupLayout().catch(() => undefined);
  if (!layout) return [];
  const parent = cgroupParentOf(root);
  const hier = layout.version === 'v2' ? [layout.unified!] : Object.values(layout.v1);
  const found = new Set<string>();
  for (const h of new Set(hier))
    for (const n of await fsp.readdir(path.join(h, parent)).catch(() => [] as string[])) {
      const m = /^ctr-([0-9a-f]{64})$/.exec(n);
      if (m && orphan(m[1]!)) found.add(`${parent}/${n}`);
    }
  return [...found].map((rel) => ({
    kind: 'container-cgroup-orphan' as const,
    target: rel,
    message: 'cgroup of a container that is not running',
    fix: () => Cgroup.at(layout, rel).destroy(),
  }));
}
