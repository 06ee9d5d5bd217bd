/**
 * The container seam: plain records on disk, one dir per container under `<root>/containers/<id>/`
 *
 *   config.json   ContainerConfig: what `run`/`create` decided (written once, at create; rename
 *                 rewrites it)
 *   state.json    ContainerState: written atomically (temp + rename) under the container's lock
 *   exit.json     written by the monitor (native/vlab-mon.c) when the process tree ended
 *   log.jsonl     docker's json-file log lines ({log, stream, time}), rotated to log.jsonl.1
 *   vlab-exec-…/  the executor's private dir of the current start (spec, /etc files)
 *   rootfs/       the mount point of the writable snapshot while it runs
 *
 * The writable snapshot is `snapshotKey` (`ctr-<id>`), an active snapshot on the image's layer
 * chain in the store's snapshotter: it lives as long as the container (start reuses it).
 */
import type { Limits, NetworkMode, PortMapping } from '../exec/types.ts';
import type { ExecutorKind } from '../exec/index.ts';

export type ContainerStatus = 'created' | 'running' | 'exited' | 'removing';

/** A mount as `run -v`/`--mount`/`--tmpfs`/image VOLUME asked for it, resolved to a source. */
export interface ContainerMount {
  type: 'bind' | 'volume' | 'tmpfs';
  /** bind: absolute host path; volume: the volume's name; tmpfs: unused. */
  source?: string;
  /** Absolute path in the container. */
  target: string;
  readonly?: boolean;
  /** tmpfs options (size=…, mode=…). */
  options?: string[];
  /** A volume made for this container only (image VOLUME, `-v /path`): `rm -v` removes it. */
  anonymous?: boolean;
}

export interface ContainerConfig {
  /** 64 hex digits. */
  id: string;
  name: string;
  /** As the user gave it (`busybox`, `busybox:latest`, an id). */
  image: string;
  /** The image's manifest and config digests at create time. */
  imageDigest: string;
  imageId: string;
  /** The process: entrypoint + cmd as docker combines them. */
  path: string;
  args: string[];
  /** Entrypoint and Cmd after the run flags were applied (inspect's Config). */
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string;
  user: string;
  hostname: string;
  readonlyRootfs: boolean;
  limits: Limits;
  mounts: ContainerMount[];
  network: NetworkMode;
  /** Published ports (`-p`, network private). */
  ports?: PortMapping[];
  /** `-t`: pid 1 gets a pty (the size it starts with, when no terminal tells). */
  tty?: { rows?: number; cols?: number };
  stopSignal: string;
  /** Which executor starts it (VLAB_EXECUTOR or the API's `executor` at create; default auto). */
  executor?: ExecutorKind;
  /** Seconds `stop` waits before SIGKILL (docker's default 10). */
  stopTimeout: number;
  autoRemove: boolean;
  /** Bytes before log.jsonl is rotated (0: no cap). */
  logMaxSize: number;
  labels: Record<string, string>;
  /** Key of the container's writable snapshot. */
  snapshotKey: string;
  created: string;
}

export interface ContainerState {
  status: ContainerStatus;
  /** Container pid 1 (host pid) while running, else 0. */
  pid: number;
  /** Its start time (clock ticks after boot, /proc/PID/stat field 22): tells a reused pid apart. */
  pidStart?: number;
  /** The file that names pid 1 once it runs (runc's pid file, else the monitor's): read by a
   * refresh while `pid` is 0 (its starter was killed before it recorded it). */
  pidFile?: string;
  /** The monitor's pid and start time. */
  monitorPid?: number;
  monitorStart?: number;
  /** /proc/sys/kernel/random/boot_id when it started: after a reboot nothing of it runs. */
  bootId?: string;
  /** The executor's private dir and cgroup of the current start (cleaned up after the end). */
  runDir?: string;
  cgroup?: string;
  /** Unmounted, cgroup and run dir removed since the last end. */
  cleaned?: boolean;
  /** -1: unknown (the monitor died, or the machine rebooted). */
  exitCode: number;
  oomKilled: boolean;
  /** Why the exit code is unknown, or why it could not start. */
  error?: string;
  startedAt?: string;
  finishedAt?: string;
  restartCount: number;
}

/** What `ps`, `inspect` and the API hand out: both files of one container. */
export interface Container {
  config: ContainerConfig;
  state: ContainerState;
  /** Running with its cgroup frozen (pause): asked of the freezer by list/get, never on disk. */
  paused?: boolean;
}

/** Options of `run`/`create`, as the API takes them (the CLI parses docker's flags into these). */
export interface CreateOptions {
  image: string;
  /** Replaces the image's Cmd (docker: `IMAGE [CMD…]`). */
  cmd?: string[];
  /** Replaces the image's Entrypoint; `[]` clears it (docker `--entrypoint ''`). */
  entrypoint?: string[];
  name?: string;
  /** `K=V` (set) or `K` (taken from `process.env` when set there), after the image's Env. */
  env?: string[];
  workingDir?: string;
  user?: string;
  hostname?: string;
  readonlyRootfs?: boolean;
  /** docker sizes or bytes; below 6 MiB is E_BAD_ARG (docker's floor). */
  memory?: number | string;
  /** Number of CPUs (`1.5`): quota = cpus × period. */
  cpus?: number | string;
  pidsLimit?: number;
  stopSignal?: string;
  stopTimeout?: number;
  autoRemove?: boolean;
  /** `-v` specs: `host:ctr[:ro]`, `name:ctr[:ro]`, `/ctr` (anonymous). */
  volumes?: string[];
  /** `--mount` specs: `type=bind|volume|tmpfs,source=…,target=…,readonly,tmpfs-size=…`. */
  mounts?: string[];
  /** `--tmpfs` specs: `/path[:options]`. */
  tmpfs?: string[];
  network?: NetworkMode;
  /** docker `-p [IP:]HOST:CONTAINER[/tcp|udp]`: needs network private. */
  publish?: string[];
  /** `-t`: a pty for pid 1 (true, or its initial size). */
  tty?: boolean | { rows?: number; cols?: number };
  labels?: Record<string, string>;
  logMaxSize?: number | string;
  /** auto (default: vlab-init as root), builtin, or oci (runc/crun); default VLAB_EXECUTOR. */
  executor?: ExecutorKind;
}

export interface StartOptions {
  /**
   * Foreground: the output goes to these callbacks as well as to the log, and `start` resolves
   * when the container has ended, with its exit code. Without it, start returns once it runs.
   */
  attach?: {
    onOutput: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
    /** The container's stdin: this fd (the CLI's 0 for `-i`). Default /dev/null. */
    stdinFd?: number;
    /** Called once it runs (docker run's sig-proxy forwards the CLI's signals from here on). */
    onStarted?: (id: string) => void;
    /**
     * The caller went away (the CLI's client was killed): from then on the container is left to
     * its monitor, as when a foreground CLI dies (no more output copied, the monitor's exit
     * command cleans up at the end), and start resolves without an exit code.
     */
    detachOn?: AbortSignal;
  };
}

export interface LogEntry {
  stream: 'stdout' | 'stderr';
  time: string;
  log: string;
}
