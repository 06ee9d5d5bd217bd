import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BuiltinExecutor, initHelper } from './builtin.ts';
import { launchServer } from './launch-server.ts';
import { makeBusyboxRootfs } from './testing/rootfs.ts';

// The vlab-init server: concurrent runs, framed output kept apart, and what happens when it dies.
describe('vlab-init server', () => {
  let base: string;
  let ex: BuiltinExecutor;
  const roots: string[] = [];
  beforeAll(async () => {
    base = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-launch-'));
    ex = await BuiltinExecutor.create({
      launcher: 'native',
      tmpDir: base,
      cgroupParent: `vlab-test-launch-${process.pid}`,
    });
    for (let i = 0; i < 6; i++) roots.push(await makeBusyboxRootfs(base));
  });
  afterAll(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  it('runs containers at once; each one gets exactly its own stdout, stderr and exit code', async () => {
    const results = await Promise.all(
      roots.map(async (root, i) => {
        let out = '';
        let err = '';
        const r = await ex.run(
          {
            rootfs: root,
            argv: [
              '/bin/sh',
              '-c',
              `for n in $(seq 2000); do echo out${i}-$n; echo err${i}-$n >&2; done; exit ${i + 3}`,
            ],
            env: [],
            cwd: '/',
          },
          { onOutput: (s, c) => (s === 'stdout' ? (out += c) : (err += c)) },
        );
        return { r, out, err, i };
      }),
    );
    for (const { r, out, err, i } of results) {
      expect(r.exitCode).toBe(i + 3);
      const seq = (p: string) => Array.from({ length: 2000 }, (_, n) => `${p}${i}-${n + 1}\n`).join('');
      expect(out).toBe(seq('out'));
      expect(err).toBe(seq('err'));
    }
  });

  it('a server killed mid-run fails that run with E_EXEC_SETUP, takes its container along, and is replaced', async () => {
    const server = launchServer(initHelper()!) as unknown as { child?: { pid: number } };
    // A duration no other process on the machine sleeps for, so the ps check below sees only ours.
    const nap = `sleep ${1000 + Math.floor(Math.random() * 8_000_000)}`;
    const p = ex.run(
      { rootfs: roots[0]!, argv: ['/bin/sh', '-c', `echo started; touch /alive; ${nap}`], env: [], cwd: '/' },
      { onOutput: () => {} },
    );
    for (let i = 0; i < 100 && !(await fs.stat(path.join(roots[0]!, 'alive')).catch(() => undefined)); i++)
      await new Promise((r) => setTimeout(r, 50));
    process.kill(server.child!.pid, 'SIGKILL');
    await expect(p).rejects.toMatchObject({ code: 'E_EXEC_SETUP' });
    // Parent-death signals: the launch process and the container's pid 1 die with the server.
    const { execFileSync } = await import('node:child_process');
    await new Promise((r) => setTimeout(r, 300));
    expect(execFileSync('ps', ['-eo', 'args']).toString()).not.toContain(nap);
    const again = await ex.run({ rootfs: roots[1]!, argv: ['/bin/true'], env: [], cwd: '/' });
    expect(again.exitCode).toBe(0);
  });
});
