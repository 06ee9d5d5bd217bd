import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { BuiltinExecutor, initHelper } from './builtin.ts';
import { closeInheritedFds } from './builtin-shell.ts';
import { createExecutor } from './index.ts';
import { executorSuite } from './testing/suite.ts';
import { seccompSuite } from './testing/seccomp-suite.ts';
import { makeBusyboxRootfs } from './testing/rootfs.ts';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { seccompSection } from './native-spec.ts';

// Both launchers pass the same isolation suite: vlab-init (as built by scripts/build-native.sh,
// which the test command's setup runs) and the util-linux shell chain it replaces.
describe('launcher choice', () => {
  it('uses vlab-init when it is built, the shell chain on request', async () => {
    expect(initHelper(), 'vlab-init is not built: run bash scripts/build-native.sh').toBeDefined();
    expect((await BuiltinExecutor.create()).launcher).toBe('native');
    expect((await BuiltinExecutor.create({ launcher: 'shell' })).launcher).toBe('shell');
    expect((await BuiltinExecutor.create({ launcher: 'shell' })).warning).toBeUndefined(); // vlab-init exec loads the filter
  });

  it('vlab-init caches the compiled filter (root-only) and ignores a cache file others could have written', async () => {
    const root = await makeBusyboxRootfs();
    const ex = await BuiltinExecutor.create();
    const status = async () => {
      let out = '';
      const r = await ex.run(
        { rootfs: root, argv: ['/bin/grep', '^Seccomp:', '/proc/self/status'], env: [], cwd: '/' },
        { onOutput: (_s, c) => (out += c) },
      );
      return `${r.exitCode} ${out}`;
    };
    try {
      expect(await status()).toBe('0 Seccomp:\t2\n');
      const file = seccompSection().find((t) => t[0] === 'sccache')?.[1];
      expect(file).toMatch(/^\/run\/vlab\/seccomp\/[0-9a-f]{32}$/);
      expect((await fs.stat(path.dirname(file!))).mode & 0o777).toBe(0o700);
      expect((await fs.stat(file!)).size).toBeGreaterThan(1000);
      // A planted program (allow everything) in a file writable by others: ignored, rebuilt.
      await fs.writeFile(`${file}.planted`, Buffer.from([6, 0, 0, 0, 0, 0, 0xff, 0x7f]), { mode: 0o666 }); // BPF_RET ALLOW
      await fs.chmod(`${file}.planted`, 0o666);
      await fs.rename(`${file}.planted`, file!);
      expect(await status()).toBe('0 Seccomp:\t2\n');
      const st = await fs.stat(file!);
      expect([st.mode & 0o777, st.size > 1000]).toEqual([0o644, true]);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });

  it('without vlab-init (no libseccomp at build time): auto picks an OCI runtime; the shell chain only on request, with a warning and no filter', async () => {
    process.env.VLAB_NO_NATIVE = '1'; // initHelper() finds nothing
    const root = await makeBusyboxRootfs();
    try {
      await expect(BuiltinExecutor.create()).rejects.toMatchObject({
        code: 'E_EXEC_UNAVAILABLE',
        message: expect.stringContaining('libseccomp-dev'),
      });
      expect(['runc', 'crun']).toContain((await createExecutor()).name);
      const shell = await createExecutor({ kind: 'builtin-shell' });
      expect(shell.warning).toMatch(/without a seccomp filter/);
      let out = '';
      await shell.run(
        { rootfs: root, argv: ['/bin/grep', '^Seccomp:', '/proc/self/status'], env: [], cwd: '/' },
        { onOutput: (_s, c) => (out += c) },
      );
      expect(out).toBe('Seccomp:\t0\n');
    } finally {
      delete process.env.VLAB_NO_NATIVE;
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
// The shell launcher's fd sweep: fds 5 and 12 inherited (as Node passes on fds it inherited).
describe('closeInheritedFds', () => {
  const sweep = (shell: string) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const stdio: ('ignore' | 'pipe')[] = ['ignore', 'pipe', 'pipe', ...Array<'ignore'>(10).fill('ignore')];
      stdio[5] = stdio[12] = 'pipe';
      const c = spawn(shell, ['-c', `${closeInheritedFds()}; ls /proc/self/fd | sort -n | tr '\\n' ' '`], { stdio });
      let out = '';
      c.stdout!.on('data', (d) => (out += d));
      c.stderr!.on('data', (d) => (out += d));
      c.on('close', (code) => resolve({ code, out }));
    });
  it.skipIf(!existsSync('/bin/bash'))('bash closes every fd above 2', async () => {
    expect(await sweep('/bin/bash')).toEqual({ code: 0, out: '0 1 2 3 ' }); // 3: ls's own dir fd
  });
  it.skipIf(!existsSync('/bin/dash'))('dash closes 3-9 and refuses to go on with a higher one', async () => {
    const r = await sweep('/bin/dash');
    expect(r.code).toBe(125);
    expect(r.out).toMatch(/cannot close inherited fd [1-9][0-9]+/);
  });
});
executorSuite('builtin', (opts) => BuiltinExecutor.create({ ...opts, launcher: 'native' }));
executorSuite('builtin-shell', (opts) => BuiltinExecutor.create({ ...opts, launcher: 'shell' }));
seccompSuite('builtin', (opts) => BuiltinExecutor.create({ ...opts, launcher: 'native' }));
seccompSuite('builtin-shell', (opts) => BuiltinExecutor.create({ ...opts, launcher: 'shell' }));
