import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BuiltinExecutor } from './builtin.ts';
import { detectCgroupLayout, sleep } from './cgroups.ts';
import { freeze, freezerOf, freezerState, isFrozen, setFrozen, thaw } from './freezer.ts';
import { useExecutor } from './testing/fixture.ts';
import { makeBusyboxRootfs } from './testing/rootfs.ts';
import { startRunning, type Running } from './testing/running.ts';

describe('freezer', () => {
  const fx = useExecutor('freezer', (o) => BuiltinExecutor.create(o));
  let c: Running;
  let root: string;
  beforeAll(async () => {
    root = await makeBusyboxRootfs(fx.base);
    const loop = 'i=0; while :; do i=$((i+1)); echo $i > /count; sleep 0.02; done';
    c = await startRunning(fx.ex, fx.cgroupParent, { rootfs: root, argv: ['/bin/sh', '-c', loop] });
  });
  afterAll(async () => c?.stop());

  const count = async () => Number((await fs.readFile(path.join(root, 'count'), 'utf8').catch(() => '0')).trim());

  it("freezes every process of the container's cgroup and thaws them (the layout's freezer)", async () => {
    const layout = await detectCgroupLayout();
    expect(freezerOf(c.cgroup).kind).toBe(layout.version === 'v2' ? 'v2' : 'v1');
    // it has started counting (polled up to 5 s: on a loaded machine the shell starts late)
    for (let i = 0; i < 50 && (await count()) === 0; i++) await sleep(100);
    expect(await count()).toBeGreaterThan(0);
    await freeze(c.cgroup);
    expect(await isFrozen(c.cgroup)).toBe(true);
    const before = await count();
    await sleep(200);
    expect(await count()).toBe(before);
    await freeze(c.cgroup); // idempotent
    await thaw(c.cgroup);
    expect(await isFrozen(c.cgroup)).toBe(false);
    // it counts on (polled up to 5 s: a loaded machine schedules it late, and a read between the
    // shell's truncate and write sees an empty file)
    let after = 0;
    for (let i = 0; i < 25 && (after = await count()) <= before; i++) await sleep(200);
    expect(after).toBeGreaterThan(before);
  });

  it('v2 cgroup.freeze on a cgroup2 hierarchy (the unified one of a hybrid layout)', async (ctx) => {
    const layout = await detectCgroupLayout();
    if (!layout.unified) {
      console.warn('no cgroup2 hierarchy mounted: the v2 freezer is not tested here');
      ctx.skip();
    }
    const dir = path.join(layout.unified!, `vlab-test-freeze-${process.pid}`);
    await fs.mkdir(dir);
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await fs.writeFile(path.join(dir, 'cgroup.procs'), String(child.pid));
      await setFrozen('v2', dir, true);
      expect(await freezerState('v2', dir)).toBe('frozen');
      expect(await fs.readFile(path.join(dir, 'cgroup.events'), 'utf8')).toMatch(/^frozen 1$/m);
      await setFrozen('v2', dir, false);
      expect(await freezerState('v2', dir)).toBe('thawed');
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      for (
        let i = 0;
        i < 100 &&
        (await fs.rmdir(dir).then(
          () => false,
          () => true,
        ));
        i++
      )
        await sleep(10);
    }
  });
});
