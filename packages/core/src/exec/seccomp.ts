/**
 * Docker's default seccomp profile, as our own table (the semantics of moby/profiles
 * seccomp/default.json, 2025): everything not listed fails with EPERM; an allow list; a few
 * argument-conditional rules (clone without namespace flags, personality values, socket families);
 * groups allowed only when the container holds a capability, evaluated against the capability set
 * it gets (DEFAULT_CAPS), as moby does with the bounding set.
 *
 * One difference from moby/profiles main, on purpose: `add_key`, `keyctl` and `request_key` stay
 * blocked (moby allowed them in 2025; Docker's documentation still lists them as blocked, and a
 * build step has no use for the kernel keyring). The differential test (seccomp.test.ts) holds
 * this table against containers-common's profile and lists every difference with its reason.
 *
 * Both executors load the result: `ociSeccomp()` is runc/crun's `linux.seccomp`, `seccompTokens()`
 * the rules vlab-init loads with libseccomp (native/vlab-init-seccomp.c).
 */
import os from 'node:os';
import { DEFAULT_CAPS } from './defaults.ts';

/** OCI / libseccomp comparison operators (value = mask, valueTwo = datum for masked_eq). */
export type ArgOp =
  'SCMP_CMP_NE' | 'SCMP_CMP_LT' | 'SCMP_CMP_LE' | 'SCMP_CMP_EQ' | 'SCMP_CMP_GE' | 'SCMP_CMP_GT' | 'SCMP_CMP_MASKED_EQ';

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: ArgOp;
}

/** One rule, in the shape of Docker's profile (so an OCI/Docker profile file reads the same way). */
export interface ProfileRule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  /** All must hold (one libseccomp rule). */
  args?: SeccompArg[];
  /** Applies only when the container has every one of `caps`, runs on one of `arches` (GOARCH names), on kernel ≥ minKernel. */
  includes?: { caps?: string[]; arches?: string[]; minKernel?: string };
  /** Does not apply when the container has any of `caps` or runs on one of `arches`. */
  excludes?: { caps?: string[]; arches?: string[] };
}

export interface Profile {
  defaultErrnoRet: number;
  syscalls: ProfileRule[];
}

const EPERM = 1;
const ENOSYS = 38;
const AF_VSOCK = 40;
/** CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: clone may not make namespaces. */
const CLONE_NS_FLAGS = 0x7e020000;

const words = (s: string) => s.trim().split(/\s+/);
const allow = (names: string, more: Omit<ProfileRule, 'names' | 'action'> = {}): ProfileRule => ({
  names: words(names),
  action: 'SCMP_ACT_ALLOW',
  ...more,
});
const withCap = (cap: string, names: string): ProfileRule => allow(names, { includes: { caps: [cap] } });
const onArch = (arches: string[], names: string): ProfileRule => allow(names, { includes: { arches } });

export const DOCKER_DEFAULT_PROFILE: Profile = {
  defaultErrnoRet: EPERM,
  syscalls: [
    allow(`
      accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
      clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
      clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
      epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
      eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
      fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync
      fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
      ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
      getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
      getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
      getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
      get_thread_area gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
      inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
      io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
      landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount
      listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
      map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
      mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
      mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock
      munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause
      pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64
      prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
      pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
      remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe
      rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
      rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
      sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
      sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
      sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
      sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
      setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
      setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
      setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
      sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat
      sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
      timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
      timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask
      uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid
      waitpid write writev`),
    // ptrace is confined to the container's pid namespace since 4.8 (seccomp can no longer be bypassed).
    allow('process_vm_readv process_vm_writev ptrace', { includes: { minKernel: '4.8' } }),
    // Any socket but AF_VSOCK (it reaches the host's hypervisor sockets, outside the net namespace).
    allow('socket', { args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }] }),
    // personality(2): only the harmless execution domains (PER_LINUX, PER_LINUX32, UNAME26 variants, query).
    ...[0, 8, 0x20000, 0x20008, 0xffffffff].map((v) =>
      allow('personality', { args: [{ index: 0, value: v, op: 'SCMP_CMP_EQ' }] }),
    ),
    onArch(['ppc64le'], 'sync_file_range2 swapcontext'),
    onArch(['arm', 'arm64'], 'arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls'),
    onArch(['amd64', 'x32'], 'arch_prctl'),
    onArch(['amd64', 'x32', 'x86'], 'modify_ldt'),
    onArch(['s390', 's390x'], 's390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr'),
    onArch(['riscv64'], 'riscv_flush_icache'),
    withCap('CAP_DAC_READ_SEARCH', 'open_by_handle_at'),
    withCap(
      'CAP_SYS_ADMIN',
      `bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie lsm_get_self_attr
       lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount open_tree perf_event_open quotactl
       quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare`,
    ),
    // Without CAP_SYS_ADMIN: clone only without namespace flags (no user namespace as host root).
    allow('clone', {
      args: [{ index: 0, value: CLONE_NS_FLAGS, op: 'SCMP_CMP_MASKED_EQ' }],
      excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] },
    }),
    allow('clone', {
      args: [{ index: 1, value: CLONE_NS_FLAGS, op: 'SCMP_CMP_MASKED_EQ' }],
      includes: { arches: ['s390', 's390x'] },
      excludes: { caps: ['CAP_SYS_ADMIN'] },
    }),
    // clone3's flags are in memory, out of seccomp's reach: ENOSYS makes libc fall back to clone.
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS, excludes: { caps: ['CAP_SYS_ADMIN'] } },
    withCap('CAP_SYS_BOOT', 'reboot'),
    withCap('CAP_SYS_CHROOT', 'chroot'),
    withCap('CAP_SYS_MODULE', 'delete_module init_module finit_module'),
    withCap('CAP_SYS_PACCT', 'acct'),
    withCap('CAP_SYS_PTRACE', 'kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace'),
    withCap('CAP_SYS_RAWIO', 'iopl ioperm'),
    withCap('CAP_SYS_TIME', 'settimeofday stime clock_settime clock_settime64'),
    withCap('CAP_SYS_TTY_CONFIG', 'vhangup'),
    withCap('CAP_SYS_NICE', 'get_mempolicy mbind set_mempolicy set_mempolicy_home_node'),
    withCap('CAP_SYSLOG', 'syslog'),
    withCap('CAP_BPF', 'bpf'),
    withCap('CAP_PERFMON', 'perf_event_open'),
  ],
};

/** A rule that applies to this container: a name, what happens, under which argument conditions. */
export interface SyscallRule {
  name: string;
  /** undefined = allow, else the errno returned. */
  errno?: number;
  args: SeccompArg[];
}

export interface Target {
  /** Capability names as in DEFAULT_CAPS (`chown`) or Docker's (`CAP_CHOWN`). */
  caps: string[];
  /** Go's GOARCH name (Docker's profile is written in it). */
  arch: string;
  /** `uname -r`. */
  kernel: string;
}

const GOARCH: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm64: 'arm64',
  arm: 'arm',
  s390x: 's390x',
  ppc64: 'ppc64le',
  riscv64: 'riscv64',
};

/** This machine and Docker's default capability set. */
export function hostTarget(caps: string[] = DEFAULT_CAPS): Target {
  return { caps, arch: GOARCH[process.arch] ?? process.arch, kernel: os.release() };
}

/**
 * The rules that apply to `t`, one per syscall name and condition set: moby's evaluation of
 * includes/excludes (every included cap held, no excluded cap held; arches by GOARCH; minKernel).
 * Rules whose action is the default one are dropped (libseccomp refuses them).
 */
export function resolveProfile(p: Profile, t: Target): SyscallRule[] {
  const caps = new Set(t.caps.map((c) => (c.startsWith('CAP_') ? c : 'CAP_' + c.toUpperCase())));
  const out: SyscallRule[] = [];
  for (const r of p.syscalls) {
    const inc = r.includes ?? {};
    const exc = r.excludes ?? {};
    if (inc.caps && !inc.caps.every((c) => caps.has(c))) continue;
    if (exc.caps?.some((c) => caps.has(c))) continue;
    if (inc.arches && !inc.arches.includes(t.arch)) continue;
    if (exc.arches?.includes(t.arch)) continue;
    if (inc.minKernel && kernelBelow(t.kernel, inc.minKernel)) continue;
    const errno = r.action === 'SCMP_ACT_ALLOW' ? undefined : (r.errnoRet ?? p.defaultErrnoRet);
    if (errno === p.defaultErrnoRet) continue;
    for (const name of r.names) out.push({ name, ...(errno !== undefined ? { errno } : {}), args: r.args ?? [] });
  }
  return out;
}

function kernelBelow(release: string, min: string): boolean {
  const v = (s: string) => (s.match(/^(\d+)\.(\d+)/) ?? [0, 0, 0]).slice(1).map(Number);
  const [a, b] = [v(release), v(min)];
  return a[0]! < b[0]! || (a[0] === b[0] && a[1]! < b[1]!);
}

/** The arches a filter covers on each host: Docker's archMap (32-bit and x32 binaries get the same rules). */
const ARCHES: Record<string, string[]> = {
  amd64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
  riscv64: ['SCMP_ARCH_RISCV64'],
};

/** runc/crun's `linux.seccomp` (runtime-spec config-linux.md#seccomp). */
export function ociSeccomp(t: Target = hostTarget()): Record<string, unknown> {
  const rules = resolveProfile(DOCKER_DEFAULT_PROFILE, t);
  // One entry per (action, args) group, names together, as Docker writes it.
  const groups = new Map<string, { names: string[]; action: string; errnoRet?: number; args?: SeccompArg[] }>();
  for (const r of rules) {
    const key = JSON.stringify([r.errno, r.args]);
    let g = groups.get(key);
    if (!g) {
      g = {
        names: [],
        action: r.errno === undefined ? 'SCMP_ACT_ALLOW' : 'SCMP_ACT_ERRNO',
        ...(r.errno !== undefined ? { errnoRet: r.errno } : {}),
        ...(r.args.length ? { args: r.args } : {}),
      };
      groups.set(key, g);
    }
    g.names.push(r.name);
  }
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: DOCKER_DEFAULT_PROFILE.defaultErrnoRet,
    architectures: ARCHES[t.arch] ?? [],
    syscalls: [...groups.values()],
  };
}

const OP_WORDS: Record<ArgOp, string> = {
  SCMP_CMP_NE: 'ne',
  SCMP_CMP_LT: 'lt',
  SCMP_CMP_LE: 'le',
  SCMP_CMP_EQ: 'eq',
  SCMP_CMP_GE: 'ge',
  SCMP_CMP_GT: 'gt',
  SCMP_CMP_MASKED_EQ: 'masked_eq',
};

/**
 * vlab-init's seccomp tokens (native/vlab-init.c lists the keywords):
 *   seccomp ERRNO              a filter whose default action fails with ERRNO
 *   scarch NAME                one more arch (libseccomp's name: x86, x32, …)
 *   scrule SYSCALL ACTION ARGS ACTION: allow or an errno; ARGS: "-" or INDEX:OP:VALUE:VALUE2,… (all hold)
 */
export function seccompTokens(t: Target = hostTarget()): string[][] {
  const out: string[][] = [['seccomp', String(DOCKER_DEFAULT_PROFILE.defaultErrnoRet)]];
  for (const a of ARCHES[t.arch] ?? []) out.push(['scarch', a.replace(/^SCMP_ARCH_/, '').toLowerCase()]);
  for (const r of resolveProfile(DOCKER_DEFAULT_PROFILE, t)) {
    const args = r.args.map((a) => [a.index, OP_WORDS[a.op], a.value, a.valueTwo ?? 0].join(':')).join(',');
    out.push(['scrule', r.name, r.errno === undefined ? 'allow' : String(r.errno), args || '-']);
  }
  return out;
}
