import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BuiltinExecutor } from './builtin.ts';
import { detectCgroupLayout } from './cgroups.ts';
import type { Limits, RunSpec } from './types.ts';
import { makeBusyboxRootfs } from './testing/rootfs.ts';
import { removeCgroupParent } from './testing/suite.ts';

// A build's executor (pool: true): the next run's cgroup is made during this one, with its
// vlab-init launcher already inside, and used ones are removed in the background until close().
describe('pooled executor', () => {
  const parent = `vlab-test-pool-${process.pid}`;
  let base: string;
  let root: string;
  let ex: BuiltinExecutor;
  let hier: string; // the hierarchy the limits live in: v1 memory, or the v2 root
  let limitFile: string;
  beforeAll(async () => {
    base = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-pool-'));
    await fs.mkdir(path.join(base, 'tmp'));
    root = await makeBusyboxRootfs(base);
    ex = await BuiltinExecutor.create({ launcher: 'native', pool: true, cgroupParent: parent, tmpDir: `${base}/tmp` });
    const layout = await detectCgroupLayout();
    hier = layout.version === 'v2' ? layout.unified! : layout.v1.memory!;
    limitFile = layout.version === 'v2' ? 'memory.max' : 'memory.limit_in_bytes';
  });
  afterAll(async () => {
    await ex.close();
    await removeCgroupParent(parent);
    await fs.rm(base, { recursive: true, force: true });
  });

  const run = async (script: string, limits?: Limits) => {
    let out = '';
    const spec: RunSpec = { rootfs: root, argv: ['/bin/sh', '-c', script], env: [], cwd: '/', limits };
    const r = await ex.run(spec, { onOutput: (_s, c) => (out += c) });
    return { code: r.exitCode, out };
  };
  /** The container's own cgroup (last path part) and memory limit, as it sees them. */
  const SELF = `sed -n 's/.*:memory:.*\\///p; s/^0::.*\\///p' /proc/self/cgroup | head -1; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; true`;
  /** Cgroups under the parent, each with the commands of the processes in it. */
  const cgroups = async () => {
    const out: Record<string, string[]> = {};
    const dirs = await fs.readdir(path.join(hier, parent), { withFileTypes: true }).catch(() => []);
    for (const e of dirs.filter((d) => d.isDirectory()).map((d) => d.name)) {
      const pids = (await fs.readFile(path.join(hier, parent, e, 'cgroup.procs'), 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean);
      out[e] = await Promise.all(
        pids.map((p) =>
          fs.readFile(`/proc/${p}/cmdline`, 'utf8').then(
            (c) => c.split('\0')[0]!,
            () => '?',
          ),
        ),
      );
    }
    return out;
  };

  it('a run finds its cgroup made ahead, limits written and launcher inside, and is born in it; close() leaves nothing', async () => {
    const limits = { memory: 96 << 20 };
    expect((await run('true', limits)).code).toBe(0); // starts the pool
    for (const f of ['go', 'started']) await fs.rm(path.join(root, f), { force: true });
    const waiting = run(`${SELF}; touch /started; while [ ! -e /go ]; do sleep 0.02; done`, limits);
    for (let i = 0; i < 250 && !(await fs.stat(path.join(root, 'started')).catch(() => undefined)); i++)
      await new Promise((r) => setTimeout(r, 20));
    let ahead: [string, string[]] | undefined;
    for (let i = 0; i < 250 && !ahead; i++) {
      // the running container's cgroup holds its launcher and pid 1; the one ahead only a launcher
      const found = Object.entries(await cgroups()).find(([, cmds]) => cmds.length === 1);
      if (found && found[1][0]!.endsWith('vlab-init')) ahead = found;
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect(ahead, JSON.stringify(await cgroups())).toBeDefined();
    expect(await fs.readFile(path.join(hier, parent, ahead![0], limitFile), 'utf8')).toBe(`${limits.memory}\n`);
    await fs.writeFile(path.join(root, 'go'), '');
    const first = await waiting;
    expect(first.code).toBe(0);
    expect(first.out.split('\n')[0]).not.toBe(ahead![0]);
    const next = await run(SELF, limits);
    expect(next).toEqual({ code: 0, out: `${ahead![0]}\n${limits.memory}\n` });
    await ex.close();
    expect(await cgroups()).toEqual({});
  });

  it('a container launched from a cgroup made ahead is held by its limits: pids as docker counts them, memory (OOM reported)', async () => {
    // the shell (pid 1) and n sleeps, no subshell: n + 1 of the container's own processes
    const loop = (n: number) =>
      `i=0; while [ $i -lt ${n} ]; do sleep 5 & p="$p $!"; i=$((i+1)); done; echo started; kill $p`;
    const pids = { pids: 8 };
    expect((await run('true', pids)).code).toBe(0); // the next run's cgroup is made ahead
    // docker's --pids-limit 8: 8 processes of the container's (the launcher beside them is ours)
    expect(await run(`${loop(7)} 2>&1`, pids)).toEqual({ code: 0, out: 'started\n' });
    const r = await run(`${loop(8)} 2>&1`, pids);
    expect(r.out).toContain("can't fork");
    expect((await run(`${loop(60)} 2>&1`, pids)).out).toContain("can't fork");
    const memory = { memory: 32 << 20 };
    expect((await run('true', memory)).code).toBe(0);
    const spec: RunSpec = {
      rootfs: root,
      argv: ['/bin/sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'],
      env: [],
      cwd: '/',
      limits: memory,
    };
    const oom = await ex.run(spec);
    expect([oom.oomKilled, oom.exitCode === 0]).toEqual([true, false]);
    await ex.close();
    expect(await cgroups()).toEqual({});
  });

  it('other limits than the cgroup made ahead: a new one with them; a launcher gone before its run: a fresh launch', async () => {
    expect((await run('true', { memory: 80 << 20 })).code).toBe(0);
    const other = await run(SELF, { memory: 72 << 20 });
    expect(other.out.split('\n')[1]).toBe(`${72 << 20}`);
    let zygote: string | undefined;
    for (let i = 0; i < 250 && !zygote; i++) {
      const [cg] = Object.entries(await cgroups()).filter(([, cmds]) => cmds.length === 1);
      if (cg) zygote = (await fs.readFile(path.join(hier, parent, cg[0], 'cgroup.procs'), 'utf8')).trim();
      else await new Promise((r) => setTimeout(r, 20));
    }
    // gone before its run comes (reaped): that run is launched afresh, in the same cgroup
    process.kill(Number(zygote), 'SIGKILL');
    for (let i = 0; i < 250 && (await fs.stat(`/proc/${zygote}`).catch(() => undefined)); i++)
      await new Promise((r) => setTimeout(r, 20));
    const after = await run(`${SELF}; echo fine`, { memory: 72 << 20 });
    expect(after.code).toBe(0);
    expect(after.out.split('\n').slice(1)).toEqual([`${72 << 20}`, 'fine', '']);
    await ex.close();
    expect(await cgroups()).toEqual({});
  });
});
