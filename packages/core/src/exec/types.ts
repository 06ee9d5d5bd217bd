/**
 * The executor seam (BuildKit's executor.go in spirit): plain data in, one small interface.
 * The caller mounts the root filesystem; the executor isolates and runs one process tree in it.
 */
export interface ExtraMount {
  type: 'bind' | 'tmpfs';
  source?: string; // host path for bind
  target: string; // path inside the container
  readonly?: boolean;
  options?: string[];
}

export interface Limits {
  memory?: number; // bytes
  cpuShares?: number;
  cpuQuota?: number; // microseconds per period
  cpuPeriod?: number; // microseconds, default 100000
  pids?: number;
  /** RLIMIT_NOFILE, soft = hard (default NOFILE_LIMIT, docker's 1024). */
  nofile?: number;
}

export interface RunSpec {
  /** A mounted, writable root filesystem. */
  rootfs: string;
  argv: string[];
  /** 'K=V' entries; PATH gets Docker's default when absent. */
  env: string[];
  cwd: string;
  /** name, uid, name:group or uid:gid; resolved through rootfs /etc/passwd and /etc/group. */
  user?: string;
  hostname?: string;
  /** A pty of the container's devpts for pid 1 (run -t); the launcher relays it to its stdin/stdout. vlab-init only. */
  tty?: { rows?: number; cols?: number };
  mounts?: ExtraMount[];
  /** none: own netns with lo only; host: the host's; private: own netns with outbound NAT (pasta). */
  network?: NetworkMode;
  /** Published ports (docker -p), network 'private' only. */
  ports?: PortMapping[];
  limits?: Limits;
  /** Lines added to the container's /etc/hosts (docker build --add-host). */
  extraHosts?: ExtraHost[];
  /** The root filesystem is mounted read-only in the container (docker run --read-only). */
  readonlyRootfs?: boolean;
}

export type NetworkMode = 'none' | 'host' | 'private';

export interface PortMapping {
  /** Host address to bind (default all). */
  hostIp?: string;
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

export interface ExtraHost {
  host: string;
  ip: string;
}

export interface RunOptions {
  signal?: AbortSignal;
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Written to the process's stdin, then closed. Default: no stdin. */
  stdin?: Buffer;
}

export interface RunResult {
  exitCode: number;
  signal?: string;
  oomKilled: boolean;
  usage: { cpuUserMicros?: number; cpuSystemMicros?: number; maxMemoryBytes?: number; wallMs: number };
}

/**
 * A container started by someone else's process (a container's monitor, containers/): the
 * command that starts it and what is left to clean up once it has ended (cleanupDetached).
 */
export interface DetachedLaunch {
  /** argv of the launcher: it runs the container and exits with its status (vlab-init SPEC). */
  argv: string[];
  /** The run's private dir (spec, /etc files): removed by cleanupDetached. */
  dir: string;
  /** The container's cgroup, relative to each hierarchy's root: removed by cleanupDetached. */
  cgroup: string;
  /**
   * Where the launcher writes the container's pid 1 once it runs (runc --pid-file), when that is
   * not the launcher's first child.
   */
  pidFile?: string;
}

export interface Executor {
  readonly name: string; // 'builtin' | 'runc' | 'crun'
  /** Said once to the user when the executor is weaker than the default (e.g. no seccomp filter). */
  readonly warning?: string;
  /**
   * Runs spec.argv isolated in spec.rootfs. Resolves with the exit status (non-zero is not an
   * error here). Rejects with VlabError: E_RUN_ABORTED when the signal fired (the whole container
   * is killed first), E_EXEC_SETUP when the container could not be created. Always cleans up its
   * cgroups, mounts and temp dirs, whether it resolves or rejects.
   */
  run(spec: RunSpec, opts?: RunOptions): Promise<RunResult>;
  /**
   * Prepares spec to be run by another process (a container's monitor), which execs `argv`: the
   * cgroup `cgroup` (relative; made here, with the limits) and a private dir under `dir` are
   * made, nothing is started. vlab-init and the OCI runtimes can; the shell launcher lacks it.
   * Throws as `run` does for a spec that cannot run; on failure nothing is left behind.
   */
  prepareDetached?(spec: RunSpec, where: { dir: string; cgroup: string }): Promise<DetachedLaunch>;
  /**
   * Ends the work a `pool` executor (ExecutorOptions.pool) does in the background: resolves once
   * the cgroups of its finished runs, and the one it made ahead, are removed. Called when no run
   * is going; runs may follow (and need another close).
   */
  close?(): Promise<void>;
}

/** Where an executor keeps its per-run state (tests point these at private places). */
export interface ExecutorOptions {
  /** Parent of per-run cgroups, relative to each hierarchy's root. Default `vlab`. */
  cgroupParent?: string;
  /** Parent of per-run temp dirs (bundles, /etc files). Default os.tmpdir(). */
  tmpDir?: string;
  /**
   * Testing only: `false` leaves out the v1 `devices` cgroup (built-in executor), as on pure
   * cgroup v2 where there is none, to show that device access is closed without it.
   */
  deviceCgroup?: boolean;
  /**
   * A build's executor: each run's cgroup is made ahead, during the run before it, with its
   * launcher already inside, and removed in the background (built-in executor as root, see
   * exec/cgroup-pool.ts). The caller must `close()` it before it reports success.
   */
  pool?: boolean;
}
