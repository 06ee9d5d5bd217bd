/**
 * `--network private`: the container's own network namespace, given an interface with outbound
 * NAT by pasta (Debian `passt`; podman's default rootless network), and `-p` ports published
 * through it. vlab-init starts pasta once the namespace exists and before pid 1 goes on
 * (its `netcmd` tokens), so the network is there when the command starts; pasta is in the
 * container's cgroup and ends with it.
 *
 * pasta's defaults are narrowed to docker's: no port is forwarded but the published ones
 * (`-t none`, not pasta's `auto`), the container cannot reach the host's loopback services
 * (`-T none -U none`, `--no-map-gw`). It runs as root (`--runas 0`): dropped to nobody it cannot
 * join a namespace of root's.
 */
import { accessSync, constants } from 'node:fs';
import { VlabError } from '@vlab/errors';
import type { PortMapping } from './types.ts';

/** The literal token vlab-init replaces with /proc/self/fd/N of the container's netns. */
export const NETNS_TOKEN = '{netns}';

export function findPasta(): string {
  for (const d of ['/usr/local/bin', '/usr/bin', '/usr/sbin', '/bin', '/sbin']) {
    try {
      accessSync(`${d}/pasta`, constants.X_OK);
      return `${d}/pasta`;
    } catch {
      /* next */
    }
  }
  throw new VlabError(
    'E_EXEC_UNAVAILABLE',
    '--network private needs pasta on the host (Debian: apt-get install passt), or use --network none|host',
  );
}

/** pasta's argv for a container's namespace with these published ports. */
export function pastaArgv(ports: PortMapping[]): string[] {
  // one -t/-u per address: pasta takes an address only for a whole spec
  const flag = (proto: 'tcp' | 'udp', f: string) => {
    const ps = ports.filter((p) => p.protocol === proto);
    if (!ps.length) return [f, 'none'];
    return ps.flatMap((p) => [f, `${p.hostIp ? `${p.hostIp}/` : ''}${p.hostPort}:${p.containerPort}`]);
  };
  return [
    findPasta(),
    '--config-net',
    '--quiet',
    '--runas',
    '0',
    '--no-map-gw',
    ...flag('tcp', '-t'),
    ...flag('udp', '-u'),
    '-T',
    'none',
    '-U',
    'none',
    '--netns',
    NETNS_TOKEN,
  ];
}

/**
 * docker's `-p [IP:]HOST:CONTAINER[/tcp|udp]` (E_BAD_ARG otherwise; a host port must be given:
 * pasta binds the ports it is told, it does not pick one).
 */
export function parsePort(s: string): PortMapping {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(s);
  const port = (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new VlabError('E_BAD_ARG', `invalid port ${v} in -p ${s}`);
    return n;
  };
  if (!m) throw new VlabError('E_BAD_ARG', `invalid port mapping "${s}": use [IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]`);
  return {
    ...(m[1] ? { hostIp: m[1].replace(/^\[|\]$/g, '') } : {}),
    hostPort: port(m[2]!),
    containerPort: port(m[3]!),
    protocol: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp',
  };
}

/** What only the vlab-init launcher does (private network, a tty): E_EXEC_UNAVAILABLE elsewhere. */
export function refuseNativeOnly(spec: { network?: string; tty?: object }, executor: string): void {
  const what = spec.network === 'private' ? '--network private' : spec.tty ? 'a tty (-t)' : undefined;
  if (what)
    throw new VlabError(
      'E_EXEC_UNAVAILABLE',
      `${what} needs the built-in executor with vlab-init (this one is ${executor}): bash scripts/build-native.sh`,
    );
}
