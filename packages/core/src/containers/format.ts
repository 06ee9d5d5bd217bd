/** How docker words a container's state: `Up 5 seconds`, `Exited (3) 5 seconds ago`, `Created`. */
import type { Container } from './types.ts';

/** go-units HumanDuration, which docker's ps uses. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(h / 24 / 365)} years`;
}

export function statusText(c: Container, now = Date.now()): string {
  const s = c.state;
  if (s.status === 'running')
    return `Up ${humanDuration(now - Date.parse(s.startedAt ?? c.config.created))}${c.paused ? ' (Paused)' : ''}`;
  if (s.status === 'removing') return 'Removal In Progress';
  if (s.status === 'created' || !s.finishedAt) return 'Created';
  return `Exited (${s.exitCode}) ${humanDuration(now - Date.parse(s.finishedAt))} ago`;
}

/** docker's State word: created, running, paused, exited, removing. */
export function stateWord(c: Container): string {
  return c.paused ? 'paused' : c.state.status;
}

/** The COMMAND column: the command line, cut to 20 characters with …, quoted (docker ps). */
export function commandText(c: Container, truncate = true): string {
  const cmd = [c.config.path, ...c.config.args].join(' ');
  const cut = truncate && [...cmd].length > 20 ? `${[...cmd].slice(0, 19).join('')}…` : cmd;
  return JSON.stringify(cut);
}

/** docker inspect's shape of a container (the fields this runtime has). */
export function inspectJson(c: Container, rootfs: string): Record<string, unknown> {
  const { config: k, state: s } = c;
  return {
    Id: k.id,
    Created: k.created,
    Path: k.path,
    Args: k.args,
    State: {
      Status: stateWord(c),
      Running: s.status === 'running',
      Paused: Boolean(c.paused),
      Restarting: false,
      OOMKilled: s.oomKilled,
      Dead: false,
      Pid: s.pid,
      ExitCode: s.exitCode,
      Error: s.error ?? '',
      StartedAt: s.startedAt ?? '0001-01-01T00:00:00Z',
      FinishedAt: s.finishedAt ?? '0001-01-01T00:00:00Z',
    },
    Image: k.imageId,
    Name: `/${k.name}`,
    RestartCount: s.restartCount,
    HostConfig: {
      AutoRemove: k.autoRemove,
      ReadonlyRootfs: k.readonlyRootfs,
      NetworkMode: k.network,
      Memory: k.limits.memory ?? 0,
      NanoCpus: k.limits.cpuQuota ? Math.round((k.limits.cpuQuota / (k.limits.cpuPeriod ?? 100_000)) * 1e9) : 0,
      PidsLimit: k.limits.pids ?? null,
      LogConfig: { Type: 'json-file', Config: { 'max-size': String(k.logMaxSize) } },
    },
    GraphDriver: { Name: 'overlay', Data: { MergedDir: rootfs, SnapshotKey: k.snapshotKey } },
    Mounts: k.mounts.map((m) => ({
      Type: m.type,
      Name: m.type === 'volume' ? m.source : undefined,
      Source: m.type === 'bind' ? m.source : '',
      Destination: m.target,
      RW: !m.readonly,
    })),
    Config: {
      Hostname: k.hostname,
      User: k.user,
      Env: k.env,
      Cmd: k.cmd,
      Image: k.image,
      WorkingDir: k.workingDir,
      Entrypoint: k.entrypoint.length ? k.entrypoint : null,
      Labels: k.labels,
      StopSignal: k.stopSignal,
      StopTimeout: k.stopTimeout,
    },
  };
}
