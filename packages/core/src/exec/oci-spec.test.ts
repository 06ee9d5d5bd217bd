import { describe, expect, it } from 'vitest';
import { buildOciConfig } from './oci-spec.ts';
import type { PreparedRun } from './prepare.ts';

const prep = (over: Partial<PreparedRun> = {}): PreparedRun => ({
  id: 'x',
  dir: '/b',
  rootfs: '/r',
  argv: ['sh', '-c', 'true'],
  env: ['PATH=/bin'],
  cwd: '/w',
  user: { uid: 0, gid: 0, additionalGids: [] },
  hostname: 'h',
  network: 'none',
  mounts: [{ type: 'bind', source: '/b/hosts', target: '/etc/hosts', hostTarget: '/r/etc/hosts' }],
  mountpoints: { root: '/r', created: [], parents: new Map(), resolved: [] },
  cleanup: async () => {},
  ...over,
});

describe('buildOciConfig', () => {
  it('namespaces, docker caps, masked/readonly paths, limits, no_new_privs', () => {
    const c = buildOciConfig(prep(), '/vlab/x', { memory: 1 << 26, cpuQuota: 50_000, pids: 64 }, 'hybrid') as any;
    expect(c.linux.namespaces.map((n: any) => n.type).sort()).toEqual(['ipc', 'mount', 'network', 'pid', 'uts']);
    expect(c.process.capabilities.bounding).toHaveLength(14);
    expect(c.process.capabilities.effective).toContain('CAP_CHOWN');
    expect(c.process.capabilities.bounding).not.toContain('CAP_SYS_ADMIN');
    expect(c.process.noNewPrivileges).toBe(true);
    expect(c.linux.maskedPaths).toContain('/proc/kcore');
    expect(c.linux.readonlyPaths).toContain('/proc/sys');
    expect(c.linux.seccomp).toMatchObject({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1 }); // Docker's profile (seccomp.ts)
    expect(c.linux.resources.memory).toEqual({ limit: 1 << 26, swap: 1 << 26 });
    expect(c.linux.resources.cpu).toEqual({ quota: 50_000, period: 100_000 });
    // A period alone is passed on (runc writes "max PERIOD"), as docker does.
    expect((buildOciConfig(prep(), '/vlab/x', { cpuPeriod: 50_000 }, 'v1') as any).linux.resources.cpu).toEqual({
      period: 50_000,
    });
    expect(c.linux.resources.pids).toEqual({ limit: 64 });
    expect(c.linux.cgroupsPath).toBe('/vlab/x');
    expect(c.mounts.map((m: any) => m.destination)).toEqual([
      '/',
      '/proc',
      '/dev',
      '/dev/null',
      '/dev/zero',
      '/dev/full',
      '/dev/random',
      '/dev/urandom',
      '/dev/tty',
      '/dev/pts',
      '/dev/shm',
      '/dev/mqueue',
      '/sys',
      '/sys/fs/cgroup',
      '/etc/hosts',
    ]);
    expect(c.mounts.at(-1).options).toEqual(['rbind', 'nodev', 'rw', 'rprivate']);
    expect(c.mounts[0]).toEqual({
      destination: '/',
      type: 'bind',
      source: '/r',
      options: ['bind', 'nodev', 'rprivate'],
    });
  });

  it("cgroups as Docker's: a cgroup namespace on pure v2 only, /sys/fs/cgroup read-only", () => {
    const ns = (v: 'v1' | 'v2' | 'hybrid') =>
      (buildOciConfig(prep(), '/v', {}, v) as any).linux.namespaces.map((n: any) => n.type);
    expect(ns('v2')).toContain('cgroup');
    expect(ns('v1')).not.toContain('cgroup');
    expect(ns('hybrid')).not.toContain('cgroup');
    const cg = (buildOciConfig(prep(), '/v', {}, 'v2') as any).mounts.find((m: any) => m.type === 'cgroup');
    expect(cg).toMatchObject({ destination: '/sys/fs/cgroup', options: expect.arrayContaining(['ro', 'nosuid']) });
  });

  it('host network keeps the host netns; non-root users get no effective caps', () => {
    const c = buildOciConfig(
      prep({ network: 'host', user: { uid: 1000, gid: 1000, additionalGids: [10] } }),
      '/v',
      {},
      'v1',
    ) as any;
    expect(c.linux.namespaces.map((n: any) => n.type)).not.toContain('network');
    expect(c.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10] });
    expect(c.process.capabilities.effective).toEqual([]);
    expect(c.linux.resources).toEqual({ devices: [{ allow: false, access: 'rwm' }] });
  });
});
