import { describe, expect, it } from 'vitest';
import { builtinMounts } from './builtin-mounts.ts';
import { Cgroup, type CgroupLayout } from './cgroups.ts';
import { containerMounts } from './mounts.ts';
import { mountCalls, nativeSpec } from './native-spec.ts';
import type { PreparedRun } from './prepare.ts';

const prep = {
  id: 'x',
  dir: '/b',
  rootfs: '/r',
  argv: ['true'],
  env: [],
  cwd: '/',
  user: { uid: 0, gid: 0, additionalGids: [] },
  hostname: 'h',
  network: 'none',
  mounts: [{ type: 'bind', source: '/b/hosts', target: '/etc/hosts', hostTarget: '/r/etc/hosts' }],
  mountpoints: { root: '/r', created: [], parents: new Map(), resolved: [] },
  cleanup: async () => {},
} as PreparedRun;
const hostHas = () => undefined;
const v2: CgroupLayout = { version: 'v2', controllers: ['memory'], v1: {}, unified: '/cg', hierarchies: [] };
const v1: CgroupLayout = {
  version: 'hybrid',
  controllers: ['cpu', 'memory'],
  v1: { cpu: '/cg/cpu', memory: '/cg/memory' },
  unified: '/cg/unified',
  hierarchies: ['/cg/cpu', '/cg/memory', '/cg/systemd'],
};

// The live suite (testing/mount-table.ts) runs on this host's layout only; the other one here.
describe('the container mount list, translated', () => {
  it('pure v2: a cgroup namespace and its cgroup2, read-only, in vlab-init tokens and fstab lines', () => {
    const cgroup = { version: 'v2' as const, cg: Cgroup.at(v2, 'vlab/x') };
    const { late } = builtinMounts(prep, { hostHas, cgroup });
    expect(late.find((l) => l[1] === '/r/sys/fs/cgroup')).toEqual([
      'cgroup',
      '/r/sys/fs/cgroup',
      'cgroup2',
      'ro,nosuid,noexec,nodev,relatime',
    ]);
    const tokens = nativeSpec({ prep, mounts: { hostHas, cgroup }, cgroupProcs: ['/cg/vlab/x/cgroup.procs'] })
      .toString()
      .split('\0');
    expect(tokens.slice(0, 5)).toEqual(['cgroup', '/cg/vlab/x/cgroup.procs', 'net', 'cgroupns', 'mount']);
    // MS_RDONLY|NOSUID|NODEV|NOEXEC|MS_RELATIME
    expect(tokens.join(' ')).toContain(`mount cgroup /r/sys/fs/cgroup cgroup2 ${0xf | (1 << 21)} -`);
  });

  it("v1 and hybrid: the host's namespace, a tmpfs, the run's cgroup of every v1 hierarchy bound read-only", () => {
    const cg = Cgroup.at(v1, 'vlab/x');
    expect(Object.values(cg.dirs).sort()).toEqual(['/cg/cpu/vlab/x', '/cg/memory/vlab/x', '/cg/systemd/vlab/x']);
    const { late } = builtinMounts(prep, { hostHas, cgroup: { version: 'hybrid', cg } });
    const cgroupLines = late.filter((l) => l[1].startsWith('/r/sys/fs/cgroup'));
    expect(cgroupLines.map((l) => `${l[0]} ${l[1]}`)).toEqual([
      'tmpfs /r/sys/fs/cgroup',
      '/cg/cpu/vlab/x /r/sys/fs/cgroup/cpu',
      '/cg/memory/vlab/x /r/sys/fs/cgroup/memory',
      '/cg/systemd/vlab/x /r/sys/fs/cgroup/systemd',
    ]);
    expect(mountCalls(cgroupLines[1]!)).toEqual([
      ['mkdir', '/r/sys/fs/cgroup/cpu', '755'],
      ['mount', '/cg/cpu/vlab/x', '/r/sys/fs/cgroup/cpu', '-', String(0x1000 | (1 << 21)), '-'],
      ['mount', '-', '/r/sys/fs/cgroup/cpu', '-', String(0x20 | 0x1000 | 0xf), '-'],
    ]);
    expect(
      nativeSpec({ prep, mounts: { hostHas, cgroup: { version: 'hybrid', cg } }, cgroupProcs: [] }).includes(
        'cgroupns',
      ),
    ).toBe(false);
  });

  it('rootless: no /sys/fs/cgroup, plain binds, devpts without gid=5 unless mapped', () => {
    const list = containerMounts({ ...prep, rootless: { mapsGid5: false } });
    expect(list.map((m) => m.destination)).not.toContain('/sys/fs/cgroup');
    expect(list[0]!.options).toEqual(['bind']);
    expect(list.find((m) => m.destination === '/dev/pts')!.options).not.toContain('gid=5');
    expect(list.at(-1)!.options).toEqual(['rbind', 'rw']);
  });
});
