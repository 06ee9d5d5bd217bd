/**
 * The isolation suite every executor passes (containerd's testsuite idea): real namespaces, real
 * cgroups, on a busybox rootfs made per test. Needs root, /bin/busybox (busybox-static).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Executor, ExecutorOptions, RunOptions, RunResult, RunSpec } from '../types.ts';
import { detectCgroupLayout } from '../cgroups.ts';
import { makeBusyboxRootfs } from './rootfs.ts';
import { isolationSuite } from './isolation.ts';
import { useExecutor } from './fixture.ts';
import { expectedMountTable, mountTable } from './mount-table.ts';

export type ExecutorFactory = (opts: ExecutorOptions) => Promise<Executor>;

export interface Ran extends RunResult {
  stdout: string;
  stderr: string;
}

export function executorSuite(name: string, factory: ExecutorFactory): void {
  describe(`executor suite: ${name}`, () => {
    const fx = useExecutor(name, factory);
    let root: string;

    beforeEach(async () => {
      root = await makeBusyboxRootfs(fx.base);
    });
    afterEach(async () => {
      await fs.rm(root, { recursive: true, force: true });
    });

    const spec = (argv: string[], extra: Partial<RunSpec> = {}): RunSpec => ({
      rootfs: root,
      argv,
      env: [],
      cwd: '/',
      ...extra,
    });
    const run = async (script: string, extra: Partial<RunSpec> = {}, opts: RunOptions = {}): Promise<Ran> => {
      let stdout = '';
      let stderr = '';
      const r = await fx.ex.run(spec(['/bin/sh', '-c', script], extra), {
        ...opts,
        onOutput: (s, c) => (s === 'stdout' ? (stdout += c) : (stderr += c)),
      });
      return { ...r, stdout, stderr };
    };

    it('runs a command: exit code, env, cwd, output streams, writes land in the rootfs', async () => {
      const r = await run('echo hi > /f; echo "$FOO $PWD"; echo err >&2; exit 3', { env: ['FOO=bar'], cwd: '/tmp' });
      expect(r.exitCode).toBe(3);
      expect(r.stdout).toBe('bar /tmp\n');
      expect(r.stderr).toBe('err\n');
      expect(r.oomKilled).toBe(false);
      expect(await fs.readFile(path.join(root, 'f'), 'utf8')).toBe('hi\n');
      const env = await run('env | sort');
      expect(env.stdout).toContain('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
      expect(env.stdout).toContain('HOME=/root\n');
    });

    it('leaves nothing in the rootfs but what the process wrote', async () => {
      const before = await listTree(root);
      const r = await run('touch /tmp/out', {
        mounts: [
          { type: 'tmpfs', target: '/cache/deep' },
          { type: 'bind', source: root + '/etc/group', target: '/run/secrets/s', readonly: true },
        ],
      });
      expect(r.exitCode).toBe(0);
      const after = await listTree(root);
      expect(after.filter((p) => !before.includes(p))).toEqual(['tmp/out']);
      expect(before.filter((p) => !after.includes(p))).toEqual([]);
    });

    it('pid: the command is pid 1 and sees only its own processes', async () => {
      const r = await run('echo $$; ls /proc | grep -E "^[0-9]+$" | wc -l; ps -o pid,comm');
      const [pid, count] = r.stdout.split('\n');
      expect(pid).toBe('1');
      expect(Number(count)).toBeLessThanOrEqual(4); // sh, ls, grep, wc
      expect(r.stdout).not.toMatch(/node|vitest/);
    });

    it('mount: the executor mounts are invisible on the host, no escape above the root', async () => {
      const seen: string[] = [];
      const p = run(
        'sleep 0.5; ls -a /.. | sort | tr "\\n" " "; echo; ls -a / | sort | tr "\\n" " "; echo; cat /proc/self/mountinfo; test -e /../../usr/bin && echo ESCAPED; true',
      );
      await new Promise((r) => setTimeout(r, 250));
      seen.push(...(await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(root)));
      const r = await p;
      expect(seen).toEqual([]);
      const [up, top, ...mountinfo] = r.stdout.split('\n');
      expect(up).toBe(top);
      expect(r.stdout).not.toContain('ESCAPED');
      // the container's mount table holds only its own mounts: no host mount point shows up
      const points = mountinfo.filter(Boolean).map((l) => l.split(' ')[4]);
      expect(points[0]).toBe('/');
      for (const p of points) expect(p).toMatch(/^\/(proc|dev|sys|etc\/(hosts|resolv\.conf|hostname))?(\/|$)/);
      const mountUp = await run('mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo MOUNTED');
      expect(mountUp.stdout).not.toContain('MOUNTED'); // no CAP_SYS_ADMIN
    });

    it("mounts: Docker's table (mountpoints; ro, nosuid, nodev, noexec), the same in every executor", async () => {
      const mounts = [
        { type: 'tmpfs' as const, target: '/cache' },
        { type: 'bind' as const, source: path.join(root, 'etc/group'), target: '/run/g', readonly: true },
      ];
      const r = await run('cat /proc/self/mountinfo', { mounts });
      expect(r.exitCode).toBe(0);
      expect(mountTable(r.stdout)).toEqual(await expectedMountTable({ mounts }));
    });

    it('uts, ipc, net, mnt, pid: namespaces differ from the host', async () => {
      const nss = ['ipc', 'uts', 'net', 'mnt', 'pid'];
      const r = await run(nss.map((n) => `readlink /proc/self/ns/${n}`).join(';') + '; hostname', {
        hostname: 'inside',
      });
      const lines = r.stdout.trim().split('\n');
      for (const [i, n] of nss.entries()) expect(lines[i]).not.toBe(await fs.readlink(`/proc/self/ns/${n}`));
      expect(lines[nss.length]).toBe('inside');
      expect(os.hostname()).not.toBe('inside');
      const cant = await run('hostname changed; hostname');
      expect(cant.stdout.trim()).not.toBe('changed');
    });

    it('net: none has only lo and cannot reach the host; host can', async () => {
      const got: string[] = [];
      const server = net.createServer((s) => s.on('data', (d) => got.push(String(d))));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as net.AddressInfo).port;
      try {
        const none = await run(`ls /sys/class/net; echo none | nc -w 2 127.0.0.1 ${port}; echo rc=$?`);
        expect(none.stdout.split('\n').filter((l) => l && !l.startsWith('rc='))).toEqual(['lo']);
        expect(none.stdout).not.toContain('rc=0');
        const host = await run(`echo host | nc -w 2 127.0.0.1 ${port}; echo rc=$?`, { network: 'host' });
        expect(host.stdout).toContain('rc=0');
        await new Promise((r) => setTimeout(r, 100));
        expect(got.join('')).toBe('host\n');
      } finally {
        server.close();
      }
    });

    it('memory: allocating past the limit is OOM-killed and reported', async () => {
      const r = await run('x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived', {
        limits: { memory: 32 * 1024 * 1024 },
      });
      expect(r.oomKilled).toBe(true);
      expect(r.stdout).not.toContain('survived');
      expect(r.exitCode).not.toBe(0);
      const ok = await run('x=$(head -c 1000000 /dev/zero | tr "\\0" a); echo survived', {
        limits: { memory: 32 * 1024 * 1024 },
      });
      expect(ok.oomKilled).toBe(false);
      expect(ok.stdout).toBe('survived\n');
    });

    it('pids: a fork loop stops at the limit', async () => {
      const loop = (n: number) =>
        `i=0; while [ $i -lt ${n} ]; do sleep 5 & i=$((i+1)); done; echo started; kill $(jobs -p)`;
      const r = await run(loop(60), { limits: { pids: 20 } });
      expect(r.stderr).toContain("can't fork");
      expect(r.stdout).not.toContain('started');
      expect(r.exitCode).not.toBe(0);
      const ok = await run(loop(10), { limits: { pids: 20 } });
      expect(ok.stdout).toBe('started\n');
    });

    it('cpu: a quota slows a busy loop', async () => {
      const loop =
        'sh -c \'i=0; trap "echo \\$i; exit 0" TERM; while :; do i=$((i+1)); done\' & p=$!; sleep 1; kill $p; wait $p';
      const free = await run(loop);
      const slow = await run(loop, { limits: { cpuQuota: 10_000, cpuPeriod: 100_000 } });
      const a = Number(free.stdout.trim());
      const b = Number(slow.stdout.trim());
      expect(a).toBeGreaterThan(0);
      expect(b).toBeGreaterThan(0);
      // CPU time, not loop counts: on a loaded machine the unlimited loop gets little CPU too, so
      // comparing counts is flaky, while the quota is a hard ceiling: 10 ms per 100 ms over the
      // ~1 s the loop runs (+ start-up and slack) stays far below the unlimited loop's ~1 s alone.
      const cpu = (r: Ran) => (r.usage.cpuUserMicros ?? 0) + (r.usage.cpuSystemMicros ?? 0);
      expect(cpu(free)).toBeGreaterThan(0);
      expect(cpu(slow)).toBeLessThan(250_000);
    });

    it('user: 1000:1000 runs as that uid and owns its files; names resolve through the image', async () => {
      const r = await run('id -u; id -g; touch /tmp/mine', { user: '1000:1000' });
      expect(r.stdout).toBe('1000\n1000\n');
      const st = await fs.stat(path.join(root, 'tmp/mine'));
      expect([st.uid, st.gid]).toEqual([1000, 1000]);
      const named = await run('id; echo $HOME; cat /proc/self/status | grep CapEff', { user: 'builder' });
      expect(named.stdout).toMatch(/^uid=1000\(builder\) gid=1000\(builder\) groups=.*10\(wheel\)/);
      expect(named.stdout).toContain('/home/builder');
      expect(named.stdout).toContain('CapEff:\t0000000000000000');
      const rootCaps = await run('grep CapBnd /proc/self/status');
      expect(rootCaps.stdout.trim()).toBe('CapBnd:\t00000000a80425fb'); // docker's default set
    });

    it('argv[0]: looked up in the env PATH; missing → 127, not executable → 126, named on stderr', async () => {
      await fs.mkdir(path.join(root, 'opt/tools'), { recursive: true });
      await fs.writeFile(path.join(root, 'opt/tools/hello'), '#!/bin/sh\necho from-path\n', { mode: 0o755 });
      await fs.writeFile(path.join(root, 'opt/tools/plain'), 'not a program\n', { mode: 0o644 });
      const collect = async (argv: string[], env: string[]) => {
        let err = '';
        let out = '';
        const r = await fx.ex.run(spec(argv, { env }), {
          onOutput: (s, c) => (s === 'stdout' ? (out += c) : (err += c)),
        });
        return { code: r.exitCode, out, err };
      };
      expect(await collect(['hello'], ['PATH=/opt/tools:/bin'])).toMatchObject({ code: 0, out: 'from-path\n' });
      const missing = await collect(['no-such-tool'], []);
      expect(missing.code).toBe(127);
      expect(missing.err).toContain('no-such-tool');
      expect((await collect(['/opt/tools/plain'], [])).code).toBe(126);
    });

    it('stdin: the given bytes are fd 0 and open again through /dev/stdin (heredoc #! scripts)', async () => {
      const viaFd = await run('cat', {}, { stdin: Buffer.from('line one\n') });
      expect(viaFd.stdout).toBe('line one\n');
      let out = '';
      const viaDev = await fx.ex.run(spec(['/bin/sh', '/dev/stdin']), {
        stdin: Buffer.from('echo from-script $((6*7))\n'),
        onOutput: (s, c) => (s === 'stdout' ? (out += c) : undefined),
      });
      expect(viaDev.exitCode).toBe(0);
      expect(out).toBe('from-script 42\n');
    });

    it('abort kills the whole container and rejects with E_RUN_ABORTED', async () => {
      const ac = new AbortController();
      const t0 = Date.now();
      const p = run('sleep 100 & sleep 100 & sleep 100', {}, { signal: ac.signal });
      setTimeout(() => ac.abort(new Error('user abort')), 300);
      await expect(p).rejects.toMatchObject({ code: 'E_RUN_ABORTED' });
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(await cgroupChildren(fx.cgroupParent)).toEqual([]);
    });

    it('cleanup: 200 runs (some aborted, some failing) leave no mounts, cgroups, processes or temp dirs', async () => {
      const jobs = Array.from({ length: 200 }, (_, i) => i);
      const results: string[] = [];
      const worker = async () => {
        // One rootfs per worker: an executor runs one container per rootfs at a time.
        const root = await makeBusyboxRootfs(fx.base);
        const spec = (argv: string[]): RunSpec => ({ rootfs: root, argv, env: [], cwd: '/' });
        for (let i = jobs.shift(); i !== undefined; i = jobs.shift()) {
          if (i % 20 === 7) {
            const ac = new AbortController();
            setTimeout(() => ac.abort(), 20 + (i % 5) * 20);
            const r = await fx.ex.run(spec(['/bin/sleep', '30']), { signal: ac.signal }).catch((e) => e.code);
            results.push(String(r));
          } else if (i % 20 === 13) {
            results.push(String((await fx.ex.run(spec(['/bin/false']))).exitCode));
          } else {
            results.push(String((await fx.ex.run(spec(['/bin/true']))).exitCode));
          }
        }
        expect(await fs.readdir(root)).toEqual(['bin', 'etc', 'home', 'root', 'tmp']);
        await fs.rm(root, { recursive: true });
      };
      await Promise.all(Array.from({ length: 4 }, worker));
      expect(results.filter((r) => r === 'E_RUN_ABORTED')).toHaveLength(10);
      expect(results.filter((r) => r === '1')).toHaveLength(10);
      expect(results.filter((r) => r === '0')).toHaveLength(180);
      const mountinfo = await fs.readFile('/proc/self/mountinfo', 'utf8');
      expect(mountinfo).not.toContain(fx.base);
      expect(await cgroupChildren(fx.cgroupParent)).toEqual([]);
      expect(await fs.readdir(fx.tmpDir)).toEqual([]);
      expect(await processesUnder(fx.base)).toEqual([]);
    }, 300_000);
  });
  isolationSuite(name, factory);
}

async function listTree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const p = path.join(rel, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await listTree(dir, p)));
  }
  return out.sort();
}

/** Per-run cgroups left under the test's parent, in any hierarchy. */
export async function cgroupChildren(parent: string): Promise<string[]> {
  const layout = await detectCgroupLayout();
  const roots = [...new Set([...Object.values(layout.v1), ...(layout.unified ? [layout.unified] : [])])];
  const out: string[] = [];
  for (const r of roots) {
    const ents = await fs.readdir(path.join(r, parent), { withFileTypes: true }).catch(() => []);
    for (const e of ents) if (e.isDirectory()) out.push(path.join(r, parent, e.name));
  }
  return out;
}

export async function removeCgroupParent(parent: string): Promise<void> {
  const layout = await detectCgroupLayout();
  // runc also makes the parent in v1 named hierarchies (name=systemd), which the layout leaves out.
  const named = (await fs.readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .filter((l) => / - cgroup \S+ .*name=/.test(l))
    .map((l) => l.split(' ')[4]!);
  const roots = [...new Set([...Object.values(layout.v1), ...(layout.unified ? [layout.unified] : []), ...named])];
  for (const r of roots) await fs.rmdir(path.join(r, parent)).catch(() => {});
}

/** Host processes whose root or cwd is under `dir`. */
export async function processesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const pid of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    for (const link of ['root', 'cwd']) {
      const t = await fs.readlink(`/proc/${pid}/${link}`).catch(() => '');
      if (t.startsWith(dir)) out.push(`${pid} ${link}=${t}`);
    }
  }
  return out;
}
