/**
 * PreparedRun → OCI runtime-spec config.json (runtime-spec 1.0, config.md and config-linux.md).
 * Pure: no I/O, so tests can read the document.
 */
import type { PreparedRun } from './prepare.ts';
import type { Limits } from './types.ts';
import type { CgroupVersion } from './cgroups.ts';
import { DEFAULT_CAPS, MASKED_PATHS, NOFILE_LIMIT, READONLY_PATHS } from './defaults.ts';
import { ociSeccomp } from './seccomp.ts';
import { cgroupNamespace, containerMounts, type ContainerMount } from './mounts.ts';

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

/** `cgroup`: the host's layout (decides the cgroup namespace and what /sys/fs/cgroup shows). */
export function buildOciConfig(
  p: PreparedRun,
  cgroupsPath: string,
  limits: Limits,
  cgroup: CgroupVersion,
): Record<string, unknown> {
  const caps = DEFAULT_CAPS.map((c) => 'CAP_' + c.toUpperCase());
  const root = p.user.uid === 0;
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (p.network !== 'host') namespaces.push({ type: 'network' });
  if (cgroupNamespace(cgroup)) namespaces.push({ type: 'cgroup' });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: {
        uid: p.user.uid,
        gid: p.user.gid,
        ...(p.user.additionalGids.length ? { additionalGids: p.user.additionalGids } : {}),
      },
      args: p.argv,
      env: p.env,
      cwd: p.cwd,
      // Like moby: a non-root user keeps only the bounding set, no effective/permitted caps.
      capabilities: {
        bounding: caps,
        effective: root ? caps : [],
        permitted: root ? caps : [],
        inheritable: [],
        ambient: [],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: p.nofile ?? NOFILE_LIMIT, soft: p.nofile ?? NOFILE_LIMIT }],
      noNewPrivileges: true,
    },
    root: { path: p.rootfs, readonly: false },
    hostname: p.hostname,
    // the list's `/` (the rootfs bound onto itself, nodev) is a mount too: runc mounts it on the
    // root before pivot_root, which then takes the topmost mount
    mounts: containerMounts({
      rootfs: p.rootfs,
      network: p.network,
      mounts: p.mounts,
      cgroup,
      readonlyRootfs: p.readonlyRootfs,
    }).map(ociMount),
    linux: {
      namespaces,
      cgroupsPath,
      resources: { devices: [{ allow: false, access: 'rwm' }], ...resources(limits) },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp: ociSeccomp(),
    },
  };
}

/** A list entry as runc takes it; binds private, as Docker's (the runtime's default is rslave). */
function ociMount(m: ContainerMount): OciMount {
  return m.type === 'bind' ? { ...m, options: [...m.options, 'rprivate'] } : m;
}

function resources(l: Limits): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (l.memory !== undefined) out.memory = { limit: l.memory, swap: l.memory };
  if (l.cpuShares !== undefined || l.cpuQuota !== undefined || l.cpuPeriod !== undefined) {
    out.cpu = {
      ...(l.cpuShares !== undefined ? { shares: l.cpuShares } : {}),
      ...(l.cpuQuota !== undefined ? { quota: l.cpuQuota } : {}),
      // A period alone is passed on too (runc writes "max PERIOD"), as docker does.
      ...(l.cpuQuota !== undefined || l.cpuPeriod !== undefined ? { period: l.cpuPeriod ?? 100_000 } : {}),
    };
  }
  if (l.pids !== undefined) out.pids = { limit: l.pids };
  return out;
}
