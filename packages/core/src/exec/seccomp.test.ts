import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import {
  DOCKER_DEFAULT_PROFILE,
  ociSeccomp,
  resolveProfile,
  seccompTokens,
  type Profile,
  type Target,
} from './seccomp.ts';
import { DEFAULT_CAPS } from './defaults.ts';

const AMD64: Target = { caps: DEFAULT_CAPS, arch: 'amd64', kernel: '6.1.0' };

/** What a profile does with one syscall for `t`: allow, errno N, or its conditional rules. */
function decision(p: Profile, name: string, t: Target = AMD64): string {
  const rules = resolveProfile(p, t).filter((r) => r.name === name);
  const act = (errno?: number) => (errno === undefined ? 'allow' : `errno ${errno}`);
  if (rules.length === 0) return `default (errno ${p.defaultErrnoRet})`;
  if (rules.some((r) => r.args.length)) {
    const conds = rules.map(
      (r) =>
        `${act(r.errno)} if ${r.args.map((a) => `a${a.index} ${a.op.slice(9).toLowerCase()} ${a.value.toString(16)}${a.valueTwo ? ':' + a.valueTwo.toString(16) : ''}`).join(' && ')}`,
    );
    return conds.sort().join('; ');
  }
  const acts = [...new Set(rules.map((r) => act(r.errno)))];
  return acts.length === 1 ? acts[0]! : `conflicting (${acts.join(', ')})`;
}

// Where our table (Docker's) and containers-common's profile part, with the default caps on amd64.
// [names, ours, containers-common, why Docker's way is kept]
const EXCEPTIONS: [string[], string, string, string][] = [
  [
    [
      'unshare',
      'mount',
      'umount',
      'umount2',
      'mount_setattr',
      'move_mount',
      'open_tree',
      'fsconfig',
      'fsmount',
      'fsopen',
      'fspick',
      'syslog',
    ],
    'default (errno 1)',
    'allow',
    'Docker allows the namespace and mount calls only with CAP_SYS_ADMIN (hole 8: no user namespace as host root); containers-common leaves them to the capability checks, for nested containers',
  ],
  [['clone'], 'allow if a0 masked_eq 7e020000', 'allow', 'Docker: clone without namespace flags unless CAP_SYS_ADMIN'],
  [['clone3'], 'errno 38', 'allow', 'Docker: clone3 flags cannot be inspected, ENOSYS makes libc fall back to clone'],
  [
    ['setns'],
    'default (errno 1)',
    'conflicting (allow, errno 1)',
    'Docker: CAP_SYS_ADMIN only; containers-common lists it both allowed and denied',
  ],
  [
    ['pivot_root'],
    'default (errno 1)',
    'allow',
    "not in Docker's profile (a build step has no use for it; it needs CAP_SYS_ADMIN anyway)",
  ],
  [
    ['reboot'],
    'default (errno 1)',
    'allow',
    'Docker: CAP_SYS_BOOT only (reboot in a pid namespace kills its init; we do not grant it)',
  ],
  [
    ['keyctl'],
    'default (errno 1)',
    'allow',
    "Docker documents the keyring calls as blocked (add_key, request_key are not in containers-common's file)",
  ],
  [
    ['get_mempolicy', 'mbind', 'set_mempolicy'],
    'default (errno 1)',
    'allow',
    'Docker: NUMA policy calls only with CAP_SYS_NICE',
  ],
  [['pidfd_getfd'], 'default (errno 1)', 'allow', "Docker: CAP_SYS_PTRACE only (it takes another process's fds)"],
  [
    ['readdir', 'syscall', 'timerfd', 'sigaction', 'signal', 'sigpending', 'sigsuspend'],
    'default (errno 1)',
    'allow',
    'legacy 32-bit entry points Docker does not list (none exists on x86_64)',
  ],
  [['io_pgetevents', 'vmsplice'], 'allow', 'errno 1', 'Docker allows them (ordinary aio and pipe calls)'],
  [
    ['socket'],
    'allow if a0 ne 28',
    'allow',
    "Docker blocks AF_VSOCK (host hypervisor sockets); containers-common's socket rules are about CAP_AUDIT_WRITE, which the container has",
  ],
];

const ORACLE = '/usr/share/containers/seccomp.json';

describe('seccomp profile', () => {
  it("agrees with containers-common's profile for every syscall it names, but for the listed exceptions", (ctx) => {
    if (!existsSync(ORACLE)) {
      console.warn(`${ORACLE} (Debian containers-common) is not installed: differential test skipped`);
      return ctx.skip();
    }
    const oracle = JSON.parse(readFileSync(ORACLE, 'utf8')) as Profile;
    const names = [...new Set(oracle.syscalls.flatMap((r) => r.names))].sort();
    expect(names.length).toBeGreaterThan(400);
    const except = new Map(EXCEPTIONS.flatMap(([ns, ours, theirs]) => ns.map((n) => [n, { ours, theirs }] as const)));
    const got: Record<string, [string, string]> = {};
    const want: Record<string, [string, string]> = {};
    for (const n of names) {
      const ours = decision(DOCKER_DEFAULT_PROFILE, n);
      const theirs = decision(oracle, n);
      // Both unlisted: each denies with its default (EPERM for Docker, ENOSYS for containers-common).
      const agree =
        ours === theirs ||
        (ours.startsWith('default') && theirs.startsWith('default')) ||
        (ours === 'default (errno 1)' && theirs === 'errno 1');
      const e = except.get(n);
      if (e || !agree) {
        got[n] = [ours, theirs];
        want[n] = e ? [e.ours, e.theirs] : [theirs, theirs];
      }
    }
    expect(got).toEqual(want);
    for (const n of except.keys()) expect(names, `stale exception ${n}`).toContain(n);
  });

  it("denies by default with EPERM and evaluates the capability groups against the container's caps", () => {
    expect(DOCKER_DEFAULT_PROFILE.defaultErrnoRet).toBe(1);
    for (const n of [
      'add_key',
      'keyctl',
      'request_key',
      'bpf',
      'perf_event_open',
      'init_module',
      'finit_module',
      'unshare',
      'setns',
      'io_uring_setup',
      'kexec_load',
      'open_by_handle_at',
    ]) {
      expect(decision(DOCKER_DEFAULT_PROFILE, n), n).toBe('default (errno 1)');
    }
    expect(decision(DOCKER_DEFAULT_PROFILE, 'chroot')).toBe('allow'); // CAP_SYS_CHROOT is in the default set
    expect(decision(DOCKER_DEFAULT_PROFILE, 'personality')).toBe(
      ['0', '8', '20000', '20008', 'ffffffff']
        .map((v) => `allow if a0 eq ${v}`)
        .sort()
        .join('; '),
    );
    const admin = { ...AMD64, caps: [...DEFAULT_CAPS, 'sys_admin'] };
    expect(decision(DOCKER_DEFAULT_PROFILE, 'clone', admin)).toBe('allow');
    expect(decision(DOCKER_DEFAULT_PROFILE, 'clone3', admin)).toBe('allow');
    expect(decision(DOCKER_DEFAULT_PROFILE, 'unshare', admin)).toBe('allow');
    expect(decision(DOCKER_DEFAULT_PROFILE, 'ptrace', { ...AMD64, kernel: '4.4.0' })).toBe('default (errno 1)');
    expect(decision(DOCKER_DEFAULT_PROFILE, 'ptrace')).toBe('allow');
    expect(decision(DOCKER_DEFAULT_PROFILE, 'arch_prctl', { ...AMD64, arch: 'arm64' })).toBe('default (errno 1)');
    expect(decision(DOCKER_DEFAULT_PROFILE, 'clone', { ...AMD64, arch: 's390x' })).toBe(
      'allow if a1 masked_eq 7e020000',
    );
  });

  it("renders runc's linux.seccomp and vlab-init's tokens from the same rules", () => {
    const oci = ociSeccomp(AMD64) as {
      defaultAction: string;
      defaultErrnoRet: number;
      architectures: string[];
      syscalls: { names: string[]; action: string; errnoRet?: number; args?: unknown[] }[];
    };
    expect(oci).toMatchObject({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    });
    expect(oci.syscalls.find((s) => s.names.includes('clone3'))).toEqual({
      names: ['clone3'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: 38,
    });
    expect(oci.syscalls.find((s) => s.names.includes('clone'))).toEqual({
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: 0x7e020000, op: 'SCMP_CMP_MASKED_EQ' }],
    });
    const allowed = oci.syscalls.filter((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args).flatMap((s) => s.names);
    expect(allowed).toContain('read');
    expect(allowed).not.toContain('keyctl');
    const toks = seccompTokens(AMD64);
    expect(toks.slice(0, 4)).toEqual([
      ['seccomp', '1'],
      ['scarch', 'x86_64'],
      ['scarch', 'x86'],
      ['scarch', 'x32'],
    ]);
    expect(toks).toContainEqual(['scrule', 'clone', 'allow', '0:masked_eq:2114060288:0']);
    expect(toks).toContainEqual(['scrule', 'clone3', '38', '-']);
    expect(toks).toContainEqual(['scrule', 'read', 'allow', '-']);
    const ruleCount = oci.syscalls.reduce((n, s) => n + s.names.length, 0);
    expect(toks.filter((t) => t[0] === 'scrule')).toHaveLength(ruleCount);
  });
});
