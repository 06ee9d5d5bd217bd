/**
 * Run by isolation.ts under script(1), i.e. with a pty as its controlling terminal, as vbuild runs
 * in a user's shell: one container of the named executor tries to reach that terminal. Writes
 * { hostTty, probes } as JSON to OUT (not to stdout: the test checks the pty shows nothing).
 *   tty-script.ts NAME ROOTFS TMPDIR CGROUP_PARENT OUT
 */
import { closeSync, openSync, promises as fs } from 'node:fs';
import { BuiltinExecutor } from '../builtin.ts';
import { OciRuntimeExecutor } from '../oci-runtime.ts';
import type { Executor } from '../types.ts';

const [name, rootfs, tmpDir, cgroupParent, out] = process.argv.slice(2) as [string, string, string, string, string];
let hostTty = 'ok';
try {
  closeSync(openSync('/dev/tty', 'r+'));
} catch (e) {
  hostTty = (e as NodeJS.ErrnoException).code ?? 'error';
}
const opts = { tmpDir, cgroupParent };
const ex: Executor =
  name === 'runc' || name === 'crun'
    ? await OciRuntimeExecutor.create(name, undefined, opts)
    : await BuiltinExecutor.create({ ...opts, launcher: name === 'builtin-shell' ? 'shell' : 'native' });
let probes = '';
await ex.run(
  { rootfs, argv: ['/bin/sh', '-c', 'probe tiocsti; probe ctty; probe tiocsti /proc/self/fd/0'], env: [], cwd: '/' },
  { onOutput: (_s, c) => (probes += c) },
);
await fs.writeFile(out, JSON.stringify({ hostTty, probes }));
