/**
 * Docker's seccomp profile, from inside a RUN container (hole 8 of issue 10): the probe
 * (probe.c) tries each call a hostile step would make. Called from the executor test files beside
 * executorSuite; skipped with a logged reason when the probe cannot be built (no cc).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunSpec } from '../types.ts';
import { makeBusyboxRootfs } from './rootfs.ts';
import { useExecutor } from './fixture.ts';
import { installProbe } from './probe.ts';
import type { ExecutorFactory } from './suite.ts';

/** Each must fail with EPERM under Docker's default profile and capability set. */
const DENIED = ['keyctl', 'unshare-user', 'clone-user', 'bpf', 'perf', 'init-module'];

export function seccompSuite(name: string, factory: ExecutorFactory): void {
  describe(`seccomp: ${name}`, () => {
    const fx = useExecutor(`seccomp-${name}`, factory);
    let root: string;
    let probe = false;

    beforeAll(async () => {
      root = await makeBusyboxRootfs(fx.base);
      probe = await installProbe(root);
    });

    const run = async (script: string, extra: Partial<RunSpec> = {}) => {
      let out = '';
      const r = await fx.ex.run(
        { rootfs: root, argv: ['/bin/sh', '-c', script], env: [], cwd: '/', ...extra },
        { onOutput: (_s, c) => (out += c) },
      );
      return { code: r.exitCode, out };
    };

    it('the process runs under a seccomp filter (root and non-root)', async () => {
      const r = await run('grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status');
      expect(r.out).toBe('NoNewPrivs:\t1\nSeccomp:\t2\n');
      expect((await run('grep ^Seccomp: /proc/self/status', { user: '1000:1000' })).out).toBe('Seccomp:\t2\n');
    });

    it('keyctl, user namespaces (unshare, clone), bpf, perf_event_open, init_module fail with EPERM; ordinary calls work', async (ctx) => {
      if (!probe) return ctx.skip();
      const r = await run(DENIED.map((c) => `echo "${c}: $(/bin/probe ${c})"`).join('; '));
      expect(r.out).toBe(DENIED.map((c) => `${c}: denied EPERM\n`).join(''));
      // Not root, and in a user namespace's clothing: still EPERM (the filter does not depend on caps held).
      const user = await run('/bin/probe unshare-user', { user: '1000:1000' });
      expect(user.out).toBe('denied EPERM\n');
      // fork (clone without namespace flags), pipes, files, an AF_INET socket: everyday calls still work.
      const ok = await run(
        'echo a | cat > /tmp/x && (cat /tmp/x) && /bin/probe open /tmp/x r; /bin/probe connect 127.0.0.1 1',
      );
      expect(ok.out).toBe('a\nok\ndenied ECONNREFUSED\n');
    });
  });
}
