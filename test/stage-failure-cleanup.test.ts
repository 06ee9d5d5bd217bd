/**
 * A build whose stage fails while another stage still runs: the build ends only after the other
 * stage has stopped, and leaves no cgroup made ahead (exec/cgroup-pool.ts) and no zygote
 * launcher behind. Before, the other stage went on after the build had rejected and closed its
 * executor: its next RUN made a cgroup ahead, with a vlab-init inside, that nobody removed until
 * the next build on the store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import { build } from '@vlab/image';
import { detectCgroupLayout } from '../packages/core/src/exec/cgroups.ts';
import { cgroupParentOf } from '../packages/core/src/store/paths.ts';
import { freshStore, makeContext, removeStore } from './helpers.ts';
import { runCli } from './torture-helpers.ts';

const root = process.getuid?.() === 0;
if (!root) console.warn('stage-failure-cleanup: needs root (cgroups): skipped');

describe.skipIf(!root)('a failing stage beside a running one', () => {
  let store: string;
  let ctx: string;
  beforeAll(async () => {
    store = await freshStore();
    ctx = await makeContext({
      Dockerfile: [
        'FROM busybox:latest AS bad',
        'RUN sleep 0.2; exit 7',
        'FROM busybox:latest AS slow',
        'RUN sleep 30', // stopped by the failing stage long before it ends: CANCELED cannot race
        'RUN echo a > /a',
        'RUN echo b > /b',
        'FROM busybox:latest',
        'COPY --from=bad /etc/passwd /x',
        'COPY --from=slow /a /a',
        '',
      ].join('\n'),
    });
  });
  afterAll(async () => {
    await fs.rm(ctx, { recursive: true, force: true });
    await removeStore(store);
  });

  /** Cgroups left under the store's cgroup parent in any hierarchy, with the pids inside. */
  const leftovers = async () => {
    const layout = await detectCgroupLayout();
    const hiers = layout.version === 'v2' ? [layout.unified!] : Object.values(layout.v1).filter(Boolean);
    const out: string[] = [];
    for (const h of hiers as string[]) {
      const dir = path.join(h, cgroupParentOf(store));
      for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => []))
        if (e.isDirectory()) {
          const procs = await fs.readFile(path.join(dir, e.name, 'cgroup.procs'), 'utf8').catch(() => '');
          out.push(`${path.join(dir, e.name)} [${procs.trim().split('\n').filter(Boolean).join(' ')}]`);
        }
    }
    return out;
  };
  /** vlab-init processes (launchers, zygotes) whose cgroup is under the store's parent. */
  const launchers = async () => {
    const parent = cgroupParentOf(store);
    const found: string[] = [];
    for (const pid of (await fs.readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
      const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (!cmd.split('\0')[0]!.endsWith('vlab-init')) continue;
      if ((await fs.readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '')).includes(parent)) found.push(pid);
    }
    return found;
  };

  it('rejects with the stage error after the other stage stopped; no cgroup or zygote is left', async () => {
    const err = await build({ context: ctx, root: store, network: 'none' }).then(
      () => undefined,
      (e: unknown) => e as { code?: string; message: string },
    );
    expect(err?.code, err?.message).toBe('E_RUN_FAILED');
    expect(err?.message).toContain('failed with exit code 7');
    // what the other stage would still do now (its RUNs after the first) has had time to happen
    await new Promise((r) => setTimeout(r, 1500));
    expect(await leftovers()).toEqual([]);
    expect(await launchers()).toEqual([]);
  });

  it("the CLI (plain progress): the stopped stage's step says CANCELED, as BuildKit; the failure is the stage error", async () => {
    const r = await runCli(store, ['build', '--no-cache', '--progress', 'plain', '--network', 'none', ctx]);
    expect(r.code).toBe(1);
    // the slow stage's RUN, stopped: "#N CANCELED" (BuildKit's plain progress)
    const num = /^(#\d+) \[slow 1\/3\] RUN sleep 30$/m.exec(r.stderr)?.[1];
    expect(num, r.stderr).toBeDefined();
    expect(r.stderr.split('\n')).toContain(`${num} CANCELED`);
    expect(r.stderr).not.toContain('the run was aborted');
    // the build's failure: the bad stage's
    expect(r.stderr).toMatch(/^#\d+ ERROR: .*exit code 7/m);
    expect(r.stderr).toMatch(/\[E_RUN_FAILED\]\s*$/);
  });
});
