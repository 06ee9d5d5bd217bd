/**
 * docker build's options for every RUN container (--add-host, --ulimit, --shm-size) and its
 * --platform, checked once before the build starts, in docker's spelling.
 */
import { isIP } from 'node:net';
import { VlabError } from '@vlab/errors';
import type { ExtraHost, ExtraMount } from '../exec/types.ts';
import { parseSize } from '../exec/limits.ts';
import { platformString } from '../image/platform.ts';

/** RFC 1123 host names (what docker's ValidateExtraHost accepts as the name side). */
const HOST_NAME = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}))*\.?$/;

/**
 * `--add-host host:ip` (docker) or `host=ip` (buildx), repeatable: lines appended to each RUN
 * container's /etc/hosts. The IP may be v6 (`h:::1`, `h=[::1]`). docker's `host-gateway` needs a
 * bridge network, which builds do not have: refused.
 */
export function parseExtraHosts(list: readonly string[] | undefined): ExtraHost[] {
  return (list ?? []).map((item) => {
    const sep = item.includes('=') ? item.indexOf('=') : item.indexOf(':');
    const host = sep > 0 ? item.slice(0, sep) : '';
    const ip = sep > 0 ? item.slice(sep + 1).replace(/^\[(.*)\]$/, '$1') : '';
    if (ip === 'host-gateway')
      throw new VlabError(
        'E_UNSUPPORTED',
        `--add-host ${item}: host-gateway needs a bridge network; RUN containers have none (give the address itself)`,
      );
    if (!HOST_NAME.test(host) || !isIP(ip))
      throw new VlabError('E_BAD_ARG', `--add-host ${item}: expected HOST:IP (e.g. db:10.0.0.5 or db=::1)`);
    return { host, ip };
  });
}

/**
 * `--ulimit nofile=SOFT[:HARD]`: both executors set RLIMIT_NOFILE only (vlab-init and the
 * setup script set soft = hard), so other limits, and a soft below the hard one, are refused.
 */
export function parseUlimits(list: readonly string[] | undefined): { nofile?: number } {
  const out: { nofile?: number } = {};
  for (const item of list ?? []) {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(item);
    if (!m) throw new VlabError('E_BAD_ARG', `--ulimit ${item}: expected NAME=SOFT[:HARD], e.g. nofile=4096:4096`);
    const [, name, soft, hard = soft] = m;
    if (name !== 'nofile')
      throw new VlabError('E_UNSUPPORTED', `--ulimit ${name}: only nofile is supported by the executors`);
    if (soft !== hard)
      throw new VlabError(
        'E_UNSUPPORTED',
        `--ulimit ${item}: soft and hard nofile limits must be equal here (the executors set both)`,
      );
    const n = Number(soft);
    if (!Number.isSafeInteger(n) || n < 1 || n > 1 << 20)
      throw new VlabError('E_BAD_ARG', `--ulimit ${item}: nofile must be 1..${1 << 20}`);
    out.nofile = n;
  }
  return out;
}

/**
 * `--shm-size SIZE`: both executors mount a 64m tmpfs on /dev/shm; this mounts one of the given
 * size over it (a later mount of the same target wins in both).
 */
export function shmMount(size: string | number | undefined): ExtraMount[] {
  if (size === undefined) return [];
  const bytes = parseSize(size, 'shm size');
  if (bytes <= 0) throw new VlabError('E_BAD_ARG', `--shm-size must be greater than 0`);
  return [{ type: 'tmpfs', target: '/dev/shm', options: ['noexec', 'mode=1777', `size=${bytes}`] }];
}

/** `--platform`: only the host's own platform can be built (no emulation); a list must name only it. */
export function checkPlatform(
  requested: string | undefined,
  host: { os: string; architecture: string; variant?: string },
): void {
  if (!requested) return;
  const own = platformString(host);
  for (const p of requested.split(',').map((s) => s.trim().toLowerCase())) {
    const norm =
      p === 'local'
        ? own
        : p
            .replace(/^linux\/x86_64\b/, 'linux/amd64')
            .replace(/^linux\/aarch64\b/, 'linux/arm64')
            .replace(/^linux\/arm64\/v8$/, 'linux/arm64');
    if (norm !== own) {
      throw new VlabError(
        'E_UNSUPPORTED',
        `--platform ${p}: only the host platform ${own} can be built here (no emulation); drop --platform or use ${own}`,
      );
    }
  }
}
