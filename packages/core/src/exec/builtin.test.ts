import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { BuiltinExecutor, closeInheritedFds, initHelper } from './builtin.ts';
import { executorSuite } from './testing/suite.ts';
import { seccompSuite } from './testing/seccomp-suite.ts';

// Both launchers pass the same isolation suite: vlab-init (as built by scripts/build-native.sh,
// which the test command's setup runs) and the util-linux shell chain it replaces.
describe('launcher choice', () => {
  it('uses vlab-init when it is built, the shell chain on request', async () => {
    expect(initHelper(), 'vlab-init is not built: run bash scripts/build-native.sh').toBeDefined();
    expect((await BuiltinExecutor.create()).launcher).toBe('native');
    expect((await BuiltinExecutor.create({ launcher: 'shell' })).launcher).toBe('shell');
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
