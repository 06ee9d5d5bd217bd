import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import { VlabError } from '@vlab/errors';
import { BuiltinExecutor } from './builtin.ts';
import { enterContainer, type EnterSpec } from './enter.ts';
import { useExecutor } from './testing/fixture.ts';
import { makeBusyboxRootfs } from './testing/rootfs.ts';
import { startRunning, type Running } from './testing/running.ts';

describe('enterContainer (vlab-init enter)', () => {
  const fx = useExecutor('enter', (o) => BuiltinExecutor.create(o));
  let c: Running;
  beforeAll(async () => {
    const root = await makeBusyboxRootfs(fx.base);
    await fs.mkdir(`${root}/work`);
    c = await startRunning(fx.ex, fx.cgroupParent, { rootfs: root, hostname: 'ctr-host' });
  });
  afterAll(async () => c?.stop());

  const run = async (script: string, extra: Partial<EnterSpec> = {}) => {
    let out = '';
    const r = await enterContainer(
      { pid: c.pid, cgroupProcs: c.cgroup.procsFiles(), argv: ['/bin/sh', '-c', script], env: [], ...extra },
      { onOutput: (_s, b) => (out += b) },
    );
    return { code: r.exitCode, out };
  };

  it("joins pid 1's namespaces, root and cgroup", async () => {
    const ns = async (n: string) => fs.readlink(`/proc/${c.pid}/ns/${n}`);
    const r = await run(
      'for n in pid mnt net uts ipc cgroup; do readlink /proc/self/ns/$n; done; hostname; cat /proc/1/cmdline | tr "\\0" " "; echo; ls /work && echo root-ok; cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup',
    );
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines.slice(0, 6)).toEqual(await Promise.all(['pid', 'mnt', 'net', 'uts', 'ipc', 'cgroup'].map(ns)));
    expect(lines[6]).toBe('ctr-host');
    expect(lines[7]).toBe('/bin/sleep 1000 ');
    expect(lines[8]).toBe('root-ok');
    const [mine, pid1] = lines.slice(9).join('\n').split('---\n');
    expect(mine).toBe(pid1); // the same cgroups as pid 1, in every hierarchy, as the container sees them
    // and the host sees the exec'd process in the container's cgroup only while it runs
    expect(await c.cgroup.pids()).toContain(c.pid);
  });

  it('has the privileges of pid 1: seccomp, no_new_privs, the same capabilities; -u, -w, -e', async () => {
    const pid1 = await fs.readFile(`/proc/${c.pid}/status`, 'utf8');
    const capEff = /^CapEff:\s*(\S+)/m.exec(pid1)![1];
    const r = await run('grep -E "^(Seccomp|NoNewPrivs|CapEff|CapBnd):" /proc/self/status');
    expect(r.out).toContain('Seccomp:\t2');
    expect(r.out).toContain('NoNewPrivs:\t1');
    expect(r.out).toContain(`CapEff:\t${capEff}`);
    expect(r.out).toContain(`CapBnd:\t${capEff}`);
    const u = await run('id -u; id -g; pwd; echo $FOO; grep CapEff /proc/self/status', {
      user: 'builder',
      cwd: '/work',
      env: ['FOO=bar'],
    });
    expect(u.out).toBe('1000\n1000\n/work\nbar\nCapEff:\t0000000000000000\n');
  });

  it('exit codes: the command, 127 not found, 126 not executable or a missing workdir', async () => {
    expect((await run('exit 7')).code).toBe(7);
    const spec = { pid: c.pid, cgroupProcs: c.cgroup.procsFiles(), env: [] };
    expect((await enterContainer({ ...spec, argv: ['nope'] })).exitCode).toBe(127);
    expect((await enterContainer({ ...spec, argv: ['/etc/passwd'] })).exitCode).toBe(126);
    expect((await enterContainer({ ...spec, argv: ['true'], cwd: '/missing' })).exitCode).toBe(126);
  });

  it('-t: a pty of the container devpts, with the given window size', async () => {
    const r = await run('tty; stty size', { tty: { rows: 33, cols: 101 } });
    expect(r.code).toBe(0);
    expect(r.out.replace(/\r/g, '')).toBe('/dev/pts/0\n33 101\n');
  });

  it('a process that is gone: E_CONTAINER_NOT_RUNNING', async () => {
    const err = await enterContainer({ pid: 999_999_999, cgroupProcs: [], argv: ['true'], env: [] }).catch((e) => e);
    expect(err).toBeInstanceOf(VlabError);
    expect((err as VlabError).code).toBe('E_CONTAINER_NOT_RUNNING');
  });
});

describe('run with a tty (vlab-init launch)', () => {
  const fx = useExecutor('tty', (o) => BuiltinExecutor.create(o));
  it("pid 1's stdio is a pty of the container's devpts, relayed by the launcher", async () => {
    const root = await makeBusyboxRootfs(fx.base);
    let out = '';
    const r = await fx.ex.run(
      {
        rootfs: root,
        argv: ['/bin/sh', '-c', 'tty; stty size; [ -t 0 ] && echo in-tty; exit 3'],
        env: [],
        cwd: '/',
        tty: { rows: 40, cols: 132 },
      },
      { onOutput: (_s, b) => (out += b) },
    );
    expect(r.exitCode).toBe(3);
    expect(out.replace(/\r/g, '')).toBe('/dev/pts/0\n40 132\nin-tty\n');
  });
});

describe('spec readers', () => {
  it('decode what nativeSpec wrote, by arity (an argv word that is a keyword is not one)', async () => {
    const { encode, decodeSpec, specCleanup, specMountpoints } = await import('./native-spec.ts');
    const spec = encode([
      ['root', '/r'],
      ['arg', 'root'],
      ['arg', 'rmdir'],
      ['rmdir', '/r/proc'],
      ['rmfile', '/r/etc/hosts'],
      ['mtime', '/r/etc', '12', '5'],
    ]);
    expect(decodeSpec(spec)).toHaveLength(6);
    expect(specMountpoints(spec, '/r')).toEqual({ created: ['/proc', '/etc/hosts'], parents: ['/etc'] });
    const c = specCleanup(spec);
    expect([c.root, c.created.map((x) => x.path), [...c.parents]]).toEqual([
      '/r',
      ['/r/etc/hosts', '/r/proc'],
      [['/r/etc', ['', '12.000000005']]],
    ]);
  });
});
