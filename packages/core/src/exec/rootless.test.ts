/**
 * Rootless mode: `createExecutor()` run as `nobody` (testing/rootless-script.ts) picks the built-in
 * executor with a user namespace. Once with the single mapping (no subuid range for nobody), once
 * with a subuid/subgid range: /etc/subuid and /etc/subgid are bind-mounted over in a private mount
 * namespace the script runs in, so the host's files are never touched.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkLimits, checkUser, subidRange, userNsArgs, type UserNs } from './rootless.ts';
import { makeBusyboxRootfs } from './testing/rootfs.ts';
import { asNobodyScript, NOBODY, runCommand } from './testing/run-command.ts';
import { installProbe } from './testing/probe.ts';
import { processesUnder } from './testing/suite.ts';
import type { CgroupLayout } from './cgroups.ts';

const script = fileURLToPath(new URL('./testing/rootless-script.ts', import.meta.url));
const tools = ['/usr/bin/setpriv', '/usr/bin/unshare', '/usr/bin/newuidmap', '/usr/bin/newgidmap'];
const canSwitch = process.getuid?.() === 0 && tools.every((t) => existsSync(t));
const SUBID_START = 200_000;

describe('rootless helpers', () => {
  const single: UserNs = { kind: 'single', uid: 1000, gid: 1000 };
  const subid: UserNs = {
    kind: 'subid',
    uid: 1000,
    gid: 1000,
    uids: { start: 100000, count: 65536 },
    gids: { start: 100000, count: 65536 },
  };

  it('subidRange finds the user by name or uid, skips bad lines', () => {
    const text = '# x\nalice:100000:65536\nbob:bad:1\n1001:300000:0\n1001:400000:1000\n';
    expect(subidRange(text, 'alice', 1000)).toEqual({ start: 100000, count: 65536 });
    expect(subidRange(text, 'carol', 1001)).toEqual({ start: 400000, count: 1000 });
    expect(subidRange(text, 'bob', 5)).toBeUndefined();
  });

  it('userNsArgs: root mapping, plus the subordinate ranges from 1 inside', () => {
    expect(userNsArgs(single)).toEqual(['--user', '--map-root-user']);
    expect(userNsArgs(subid)).toEqual([
      '--user',
      '--map-root-user',
      '--map-users=100000,1,65536',
      '--map-groups=100000,1,65536',
    ]);
  });

  it('checkUser: only 0 with the single mapping; ids within the range with subids', () => {
    const u = (uid: number, gid: number, additionalGids: number[] = []) => ({ uid, gid, additionalGids });
    expect(() => checkUser(single, u(0, 0), '')).not.toThrow();
    expect(() => checkUser(single, u(1000, 1000), '1000')).toThrow(
      /USER 1000 needs a subuid range \(newuidmap\) in rootless mode/,
    );
    expect(() => checkUser(single, u(0, 0, [10]), 'root')).toThrow(
      expect.objectContaining({ code: 'E_EXEC_UNAVAILABLE' }),
    );
    expect(() => checkUser(subid, u(1000, 1000, [10]), 'builder')).not.toThrow();
    expect(() => checkUser(subid, u(70000, 0), '70000')).toThrow(
      expect.objectContaining({ code: 'E_EXEC_UNAVAILABLE' }),
    );
  });

  it('checkLimits: any limit fails with E_EXEC_UNAVAILABLE, none passes', () => {
    const v1 = { version: 'v1', v1: {} } as unknown as CgroupLayout;
    const v2 = { version: 'v2', v1: {}, unified: '/sys/fs/cgroup' } as unknown as CgroupLayout;
    expect(() => checkLimits(v1, undefined)).not.toThrow();
    expect(() => checkLimits(v1, { memory: undefined })).not.toThrow();
    expect(() => checkLimits(v1, { memory: 1 << 20 })).toThrow(/cgroup limits need root on cgroup v1/);
    expect(() => checkLimits(v2, { pids: 5 })).toThrow(expect.objectContaining({ code: 'E_EXEC_UNAVAILABLE' }));
  });
});

interface Ran {
  exitCode?: number;
  error?: string;
  message?: string;
  stdout: string;
  stderr: string;
}
interface ScriptOut {
  uid: number;
  name: string;
  userNs: string;
  basic: Ran;
  host: Record<string, string>;
  written: [number, number] | null;
  memory: Ran;
  pids: Ran;
  user1000: Ran;
  by1000: [number, number] | null;
  builder: Ran;
  hostNet: Ran;
  seccomp: Ran;
  abort: Ran & { ms: number; sleepersBefore: string[]; sleepersAfter: string[] };
  tmpLeft: string[];
}

const run = runCommand;

describe.skipIf(!canSwitch)(
  'rootless builtin executor (as nobody; skipped unless root with setpriv, unshare, newuidmap)',
  () => {
    const dirs: string[] = [];
    let probe = false;
    afterAll(async () => {
      for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
    });

    /** nobody must be able to read the checkout (a clone under /root is not): skip, saying why. */
    const readable = async () =>
      (await run('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'test', '-r', script]))
        .code === 0;

    /** A base dir owned by nobody: root/ (busybox rootfs), tmp/ (executor temp dirs). */
    const makeBase = async () => {
      const base = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-rootless-exec-'));
      dirs.push(base);
      await fs.chmod(base, 0o755);
      await fs.rename(await makeBusyboxRootfs(base), path.join(base, 'root'));
      probe = await installProbe(path.join(base, 'root'));
      await fs.mkdir(path.join(base, 'tmp'));
      await run('chown', ['-R', `${NOBODY}:${NOBODY}`, base]);
      return base;
    };

    const asNobody = async (base: string, subid: boolean): Promise<ScriptOut> => {
      const inner = asNobodyScript(base, script, [base]);
      let r;
      if (subid) {
        const file = path.join(base, 'subid');
        await fs.writeFile(file, `nobody:${SUBID_START}:65536\n`, { mode: 0o644 });
        const q = (s: string) => `'${s}'`;
        const sh = `mount --bind ${q(file)} /etc/subuid && mount --bind ${q(file)} /etc/subgid && exec ${inner.map(q).join(' ')}`;
        r = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', sh], path.dirname(script));
      } else {
        r = await run(inner[0], inner.slice(1), path.dirname(script));
      }
      const out = r.stdout.trim().split('\n').pop() ?? '';
      if (r.code !== 0 || !out.startsWith('{')) throw new Error(`rootless script failed (${r.code}): ${r.stderr}`);
      return JSON.parse(out) as ScriptOut;
    };

    const common = async (base: string, r: ScriptOut) => {
      expect(r.uid).toBe(NOBODY);
      expect(r.name).toBe('builtin');
      // uid/gid 0 inside, pid 1, own hostname, 4 processes (sh, ls, grep, wc), only lo
      expect(r.basic.stderr).toBe('');
      const lines = r.basic.stdout.split('\n');
      expect(lines.slice(0, 4)).toEqual(['0', '0', '1', 'rootless-box']);
      expect(Number(lines[4])).toBeGreaterThanOrEqual(1);
      expect(Number(lines[4])).toBeLessThanOrEqual(4); // sh, ls, grep, wc: no host process
      expect(lines[5]).toBe('lo ');
      const nss = ['user', 'pid', 'mnt', 'uts', 'ipc', 'net'];
      for (const [i, n] of nss.entries()) {
        expect(lines[6 + i]).toMatch(new RegExp(`^${n}:\\[\\d+\\]$`));
        expect(lines[6 + i]).not.toBe(r.host[n]);
      }
      // the file root wrote inside is the real user's outside; devices work; sysfs shows only lo;
      // root inside has no CAP_SYS_ADMIN (Docker's set)
      expect(lines.slice(12)).toEqual(['0', '4', '4', 'lo ', 'nomount', '']);
      expect(r.written).toEqual([NOBODY, NOBODY]);
      expect(r.hostNet).toMatchObject({ exitCode: 0, stdout: 'sys-ok\n' });
      expect(r.seccomp.stdout).toBe(
        'Seccomp:\t2\n' + (probe ? 'keyctl denied EPERM\nunshare-user denied EPERM\n' : ''),
      );
      // limits are refused, not ignored
      for (const x of [r.memory, r.pids]) {
        expect(x.error).toBe('E_EXEC_UNAVAILABLE');
        expect(x.message).toMatch(/cgroup limits need root on cgroup v1|delegated cgroup v2/);
      }
      // abort kills the whole container (3 background sleeps) promptly
      expect(r.abort.error).toBe('E_RUN_ABORTED');
      expect(r.abort.ms).toBeLessThan(10_000);
      expect(r.abort.sleepersBefore).toHaveLength(3);
      expect(r.abort.sleepersAfter).toEqual([]);
      // nothing left: temp dirs, mounts, processes, mountpoints in the rootfs
      expect(r.tmpLeft).toEqual([]);
      expect(await processesUnder(base)).toEqual([]);
      expect(await fs.readFile('/proc/self/mountinfo', 'utf8')).not.toContain(base);
      const left = (await fs.readdir(path.join(base, 'root'))).sort();
      expect(left).toEqual(['bin', 'etc', 'home', 'root', 'tmp', 'written']);
    };

    it(
      'single mapping (no subuid range): root inside, isolated; USER 1000 refused',
      { timeout: 60_000 },
      async (ctx) => {
        if (!(await readable())) ctx.skip(); // checkout not readable by nobody
        const base = await makeBase();
        const r = await asNobody(base, false);
        expect(r.userNs).toBe('single');
        await common(base, r);
        expect(r.user1000.error).toBe('E_EXEC_UNAVAILABLE');
        expect(r.user1000.message).toMatch(/^USER 1000:1000 needs a subuid range \(newuidmap\) in rootless mode/);
        expect(r.builder.error).toBe('E_EXEC_UNAVAILABLE');
        expect(r.by1000).toBeNull();
      },
    );

    it('subuid/subgid range (newuidmap): USER 1000 and supplementary groups work', { timeout: 60_000 }, async (ctx) => {
      if (!(await readable())) ctx.skip(); // checkout not readable by nobody
      const base = await makeBase();
      const r = await asNobody(base, true);
      expect(r.userNs).toBe('subid');
      await common(base, r);
      expect(r.user1000).toMatchObject({ exitCode: 0, stdout: '1000\n1000\n' });
      // inside 1000 = SUBID_START + 999 outside
      expect(r.by1000).toEqual([SUBID_START + 999, SUBID_START + 999]);
      expect(r.builder.stdout).toMatch(/^uid=1000\(builder\) gid=1000\(builder\) groups=.*10\(wheel\)/);
    });
  },
);
