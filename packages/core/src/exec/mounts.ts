/**
 * The one list of what a build container mounts, as data (`{ destination, type, source, options }`,
 * container paths, mount(8) option words). Both executors translate it: oci-spec.ts into
 * config.json's `mounts`, builtin-mounts.ts into mount calls for vlab-init and fstab tables for
 * the shell launcher. Masked and read-only paths (defaults.ts) are the runtime's own rules and are
 * not in it (runc refuses mounts under /proc).
 *
 * Docker's defaults (moby oci/defaults.go) with two changes of ours, for device access on any cgroup
 * layout (pure v2 has no devices controller and we load no eBPF program): the root, /dev and every
 * bind are `nodev`, and the allowed device nodes are the host's own, bound in. So a node a RUN makes
 * (CAP_MKNOD) or an image brings cannot be opened. Not nosuid: setuid binaries work as in Docker.
 */
import type { CgroupVersion } from './cgroups.ts';
import type { ExtraMount, NetworkMode } from './types.ts';

export interface ContainerMount {
  /** Path inside the container. */
  destination: string;
  /** A filesystem type, `bind`, or `cgroup` (the container's cgroups, in the layout's form). */
  type: string;
  source: string;
  options: string[];
}

export interface MountListInput {
  rootfs: string;
  network: NetworkMode;
  /** /etc/hosts, resolv.conf, hostname binds, then the spec's mounts, in mount order. */
  mounts: ExtraMount[];
  /** The host's cgroup layout; undefined: no /sys/fs/cgroup (rootless, which has no cgroup). */
  cgroup?: CgroupVersion;
  /**
   * Rootless: binds stay plain (no CAP_MKNOD over the host, so the user opens only what it could
   * anyway, and a remount must keep the source's locked flags, which we do not know); devpts gets
   * gid=5 only when gid 5 is mapped; with host networking sysfs cannot be mounted (the host's net
   * namespace is not ours), so the host's /sys is bound read-only.
   */
  rootless?: { mapsGid5: boolean };
  /** The root filesystem read-only (docker run --read-only). */
  readonlyRootfs?: boolean;
}

/** A container's device nodes (Docker's): name, major, minor; bound in from the host's /dev. */
export const DEV_NODES: [string, number, number][] = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];

const PROC_FLAGS = ['nosuid', 'noexec', 'nodev'];

/** Docker: a private cgroup namespace on pure v2, the host's on v1 and hybrid. */
export function cgroupNamespace(version: CgroupVersion | undefined): boolean {
  return version === 'v2';
}

/** The container's mounts, in mount order; `/` (the rootfs bound onto itself, nodev) first. */
export function containerMounts(p: MountListInput): ContainerMount[] {
  const nodev = p.rootless ? [] : ['nodev'];
  const m = (destination: string, type: string, source: string, options: string[]): ContainerMount => ({
    destination,
    type,
    source,
    options,
  });
  const out: ContainerMount[] = [
    m('/', 'bind', p.rootfs, ['bind', ...nodev, ...(p.readonlyRootfs ? ['ro'] : [])]),
    m('/proc', 'proc', 'proc', PROC_FLAGS),
    m('/dev', 'tmpfs', 'tmpfs', ['nosuid', 'nodev', 'strictatime', 'mode=755', 'size=65536k']),
    ...DEV_NODES.map(([d]) => m(`/dev/${d}`, 'bind', `/dev/${d}`, ['bind'])),
    m('/dev/pts', 'devpts', 'devpts', [
      'nosuid',
      'noexec',
      'newinstance',
      'ptmxmode=0666',
      'mode=0620',
      ...(!p.rootless || p.rootless.mapsGid5 ? ['gid=5'] : []),
    ]),
    m('/dev/shm', 'tmpfs', 'shm', ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k']),
    m('/dev/mqueue', 'mqueue', 'mqueue', PROC_FLAGS),
    p.rootless && p.network === 'host'
      ? m('/sys', 'bind', '/sys', ['rbind', 'ro'])
      : m('/sys', 'sysfs', 'sysfs', ['ro', ...PROC_FLAGS]),
  ];
  // Read-only, as Docker: a RUN sees its limits but cannot change them or move itself out.
  if (p.cgroup) out.push(m('/sys/fs/cgroup', 'cgroup', 'cgroup', ['ro', ...PROC_FLAGS, 'relatime']));
  for (const x of p.mounts) {
    if (x.type === 'tmpfs')
      out.push(m(x.target, 'tmpfs', 'tmpfs', ['nosuid', 'nodev', ...(x.options ?? []), ...(x.readonly ? ['ro'] : [])]));
    else out.push(m(x.target, 'bind', x.source!, ['rbind', ...nodev, ...(x.options ?? []), x.readonly ? 'ro' : 'rw']));
  }
  return out;
}
