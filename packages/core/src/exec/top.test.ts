import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BuiltinExecutor } from './builtin.ts';
import { cpuTime, startTime, top, ttyName } from './top.ts';
import { useExecutor } from './testing/fixture.ts';
import { makeBusyboxRootfs } from './testing/rootfs.ts';
import { startRunning, type Running } from './testing/running.ts';

const run = promisify(execFile);

describe('top', () => {
  const fx = useExecutor('top', (o) => BuiltinExecutor.create(o));
  let c: Running;
  beforeAll(async () => {
    const root = await makeBusyboxRootfs(fx.base);
    c = await startRunning(fx.ex, fx.cgroupParent, {
      rootfs: root,
      argv: ['/bin/sh', '-c', 'sleep 1001 & exec sleep 1000'],
    });
  });
  afterAll(async () => c?.stop());

  it("lists the container's processes as procps' ps -f does (the oracle), not its host-side launcher", async () => {
    let t = await top(c.cgroup, c.pid);
    // Until both have exec'd sleep (a loaded machine shows the forked shell first).
    const settled = () => t.processes.length >= 2 && t.processes.every((p) => p[7]!.startsWith('sleep'));
    for (let i = 0; i < 50 && !settled(); i++) t = await top(c.cgroup, c.pid);
    expect(t.titles).toEqual(['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
    expect(t.processes.map((p) => p[7])).toEqual(['sleep 1000', 'sleep 1001']);
    expect((await c.cgroup.pids()).length).toBe(3); // + vlab-init outside the pid namespace
    const pids = t.processes.map((p) => p[1]);
    const { stdout } = await run('ps', ['-f', '--no-headers', '-p', pids.join(',')]);
    const ps = stdout
      .trim()
      .split('\n')
      .map((l) => {
        const f = l.trim().split(/\s+/);
        return [...f.slice(0, 7), f.slice(7).join(' ')];
      });
    expect(t.processes).toEqual(ps);
    expect(t.processes[1][2]).toBe(String(c.pid)); // the child's parent is pid 1, by its host pid
  });

  it('formats like procps', () => {
    expect(cpuTime(0)).toBe('00:00:00');
    expect(cpuTime(3 * 86400 + 3661)).toBe('03-01:01:01');
    expect(ttyName(0)).toBe('?');
    expect(ttyName((136 << 8) | 3)).toBe('pts/3');
    const now = new Date(2026, 11, 1, 12, 0);
    expect(startTime(new Date(2026, 11, 1, 9, 5), now)).toBe('09:05');
    expect(startTime(new Date(2026, 10, 30, 9, 5), now)).toBe('Nov30');
    expect(startTime(new Date(2025, 10, 30), now)).toBe('2025');
  });
});
