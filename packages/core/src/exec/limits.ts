/**
 * The cgroup limits of a build's RUN containers: what the user asked for (--memory,
 * --cpu-quota, --cpu-period, --pids-limit), checked as docker checks them, plus the default pids
 * limit that keeps a fork bomb in a RUN from reaching the host.
 */
import { VlabError } from '@vlab/errors';
import type { Limits } from './types.ts';
import type { CgroupLayout } from './cgroups.ts';

/**
 * podman's default (containers.conf `pids_limit = 2048`): far above what a build step forks
 * (a parallel make or npm install stays in the hundreds), far below what takes a host down
 * (pid_max is 32768 and up). Docker and BuildKit set none.
 */
export const DEFAULT_PIDS_LIMIT = 2048;

/** Docker's floors (daemon/daemon_unix.go): below them a container cannot even start. */
const MIN_MEMORY = 6 * 1024 * 1024;
const MIN_CPU_QUOTA = 1000;
const CPU_PERIOD_RANGE = [1000, 1_000_000] as const;
/** The kernel's ceilings: a cfs quota is at most 2^44-1 us (MAX_BW), pids.max at most PID_MAX_LIMIT (2^22). */
const MAX_CPU_QUOTA = 2 ** 44 - 1;
const MAX_PIDS = 2 ** 22;

export interface LimitRequest {
  /** Bytes, or a docker size: `512m`, `1g`, `1.5g`, `100k`, `1024` (binary units, as docker). */
  memory?: number | string;
  /** Microseconds of CPU per period (docker --cpu-quota). */
  cpuQuota?: number;
  /** Microseconds, default 100000 (docker --cpu-period). */
  cpuPeriod?: number;
  /** Process limit; -1 or 0: unlimited. Default DEFAULT_PIDS_LIMIT where it can be applied. */
  pidsLimit?: number;
}

/** docker's (go-units) RAMInBytes: a number with an optional k, m, g, t or p (×1024 each), `b`/`ib` allowed. */
export function parseSize(v: string | number, what = 'size'): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new VlabError('E_BAD_ARG', `${what} must be a non-negative whole number of bytes, got ${v}`);
    return v;
  }
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(v.trim());
  if (!m)
    throw new VlabError(
      'E_BAD_ARG',
      `invalid ${what} "${v}": use a number of bytes with an optional unit, e.g. 512m or 1g`,
    );
  const exp = m[2] ? 'kmgtp'.indexOf(m[2].toLowerCase()) + 1 : 0;
  const n = Math.floor(Number(m[1]) * 1024 ** exp);
  if (!Number.isSafeInteger(n)) throw new VlabError('E_BAD_ARG', `${what} "${v}" is too large`);
  return n;
}

/**
 * The Limits every RUN of a build gets. The default pids limit applies only where a pids cgroup
 * can be written: as root with the pids controller (podman does the same); rootless runs have no
 * cgroup, and the rootless executor refuses limits asked for explicitly.
 */
export function runLimits(
  req: LimitRequest,
  host: { root: boolean; layout?: Pick<CgroupLayout, 'controllers'> },
): Limits {
  const out: Limits = {};
  if (req.memory !== undefined) {
    out.memory = parseSize(req.memory, 'memory limit');
    if (out.memory < MIN_MEMORY)
      throw new VlabError('E_BAD_ARG', `memory limit ${out.memory} is below the minimum of 6m (${MIN_MEMORY} bytes)`);
  }
  if (req.cpuPeriod !== undefined) {
    const [lo, hi] = CPU_PERIOD_RANGE;
    if (!Number.isSafeInteger(req.cpuPeriod) || req.cpuPeriod < lo || req.cpuPeriod > hi)
      throw new VlabError('E_BAD_ARG', `cpu period must be ${lo}..${hi} microseconds, got ${req.cpuPeriod}`);
    out.cpuPeriod = req.cpuPeriod;
  }
  if (req.cpuQuota !== undefined) {
    if (!Number.isSafeInteger(req.cpuQuota) || req.cpuQuota < MIN_CPU_QUOTA || req.cpuQuota > MAX_CPU_QUOTA) {
      throw new VlabError(
        'E_BAD_ARG',
        `cpu quota must be ${MIN_CPU_QUOTA}..${MAX_CPU_QUOTA} microseconds, got ${req.cpuQuota}`,
      );
    }
    out.cpuQuota = req.cpuQuota;
  }
  if (req.pidsLimit !== undefined) {
    if (!Number.isSafeInteger(req.pidsLimit) || req.pidsLimit < -1 || req.pidsLimit > MAX_PIDS) {
      throw new VlabError(
        'E_BAD_ARG',
        `pids limit must be a whole number up to ${MAX_PIDS} (-1 or 0: unlimited), got ${req.pidsLimit}`,
      );
    }
    if (req.pidsLimit > 0) out.pids = req.pidsLimit;
  } else if (host.root && host.layout?.controllers.includes('pids')) {
    out.pids = DEFAULT_PIDS_LIMIT;
  }
  return out;
}

/**
 * The limits as written to a built-in executor's run cgroup. docker's pids limit counts the
 * container's own processes only (runc's init execs into pid 1; runc and docker's network
 * proxies live outside the cgroup). Ours holds its launcher beside them (vlab-init's outer
 * process, or the shell launcher's `unshare --fork`), and for `--network private` pasta: so
 * pids.max gets those on top, and the user's N processes fit as under docker.
 *
 * So the container reads N+1 (N+2 with pasta) in its /sys/fs/cgroup's pids.max, where docker's
 * reads N: the file is the run cgroup's own, and the limit it shows is the one that holds the
 * launcher too. Showing N would need the launcher out of that cgroup, and both ways cost every
 * RUN: a nested cgroup for the container (one more mkdir/rmdir per hierarchy, and on cgroup v2 a
 * third, a leaf for the launcher: no processes beside child cgroups), or the launcher migrating
 * itself out before its child may fork (a cgroup migration waits for an RCU grace period, 4-13 ms
 * on v1 here, against a RUN step of ~20 ms all in). Writing N with the launcher inside would give
 * the container N-1. The guarantee (N processes of the container's own) is kept; the file's
 * number is not docker's (README "Differences from docker build").
 */
export function cgroupLimits(limits: Limits | undefined, network: string | undefined): Limits | undefined {
  if (limits?.pids === undefined) return limits;
  const ours = 1 + (network === 'private' ? 1 : 0);
  return { ...limits, pids: Math.min(limits.pids + ours, MAX_PIDS) };
}
