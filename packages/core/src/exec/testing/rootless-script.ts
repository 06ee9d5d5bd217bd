/**
 * Run by rootless.test.ts as an unprivileged user: `createExecutor()` (auto) in `<base>/root` (a
 * busybox rootfs the user owns), temp dirs in `<base>/tmp`. Prints one JSON line with what each
 * run showed; the test makes the assertions.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createExecutor } from '../index.ts';
import { BuiltinExecutor } from '../builtin.ts';
import type { RunOptions, RunSpec } from '../types.ts';

const base = process.argv[2];
const rootfs = path.join(base, 'root');
const tmpDir = path.join(base, 'tmp');
const ex = await createExecutor({ tmpDir });

const run = async (script: string, extra: Partial<RunSpec> = {}, opts: RunOptions = {}) => {
  let stdout = '';
  let stderr = '';
  try {
    const r = await ex.run(
      { rootfs, argv: ['/bin/sh', '-c', script], env: [], cwd: '/', ...extra },
      {
        ...opts,
        onOutput: (s, c) => (s === 'stdout' ? (stdout += c) : (stderr += c)),
      },
    );
    return { exitCode: r.exitCode, oomKilled: r.oomKilled, stdout, stderr };
  } catch (e) {
    const err = e as { code?: string; message: string };
    return { error: err.code ?? 'unknown', message: err.message, stdout, stderr };
  }
};

/** A duration no other process on the machine sleeps for: the check below counts only ours. */
const nap = String(1000 + Math.floor(Math.random() * 8_000_000));

/** Processes of ours still running a container's `sleep NAP`. */
const sleepers = async () => {
  const out: string[] = [];
  for (const pid of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd === ['sleep', nap, ''].join('\0')) out.push(pid);
  }
  return out;
};

const nss = ['user', 'pid', 'mnt', 'uts', 'ipc', 'net'];
const basic = await run(
  [
    'id -u; id -g; echo $$; hostname',
    'ls /proc | grep -E "^[0-9]+$" | wc -l',
    "ip -o link | awk -F': ' '{print $2}' | tr '\\n' ' '; echo",
    ...nss.map((n) => `readlink /proc/self/ns/${n}`),
    'echo hi > /written; ls -ln /written | awk "{print \\$3}"',
    'echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c',
    'ls /sys/class/net | tr "\\n" " "; echo',
    'mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED || echo nomount',
  ].join('; '),
  { hostname: 'rootless-box', network: 'none' },
);
const host = Object.fromEntries(await Promise.all(nss.map(async (n) => [n, await fs.readlink(`/proc/self/ns/${n}`)])));
const written = await fs.stat(path.join(rootfs, 'written')).then(
  (s) => [s.uid, s.gid],
  () => null,
);

const memory = await run('echo ran', { limits: { memory: 64 << 20 } });
const pids = await run('echo ran', { limits: { pids: 10 } });
const user1000 = await run('id -u; id -g; touch /tmp/by1000', { user: '1000:1000' });
const by1000 = await fs.stat(path.join(rootfs, 'tmp/by1000')).then(
  (s) => [s.uid, s.gid],
  () => null,
);
const builder = await run('id', { user: 'builder' });
const hostNet = await run('ls /sys/class/net | grep -qx lo && echo sys-ok', { network: 'host' });
// Docker's seccomp filter (vlab-init exec): no keyring, no nested user namespace.
const seccomp = await run(
  'grep ^Seccomp: /proc/self/status; if [ -x /bin/probe ]; then for c in keyctl unshare-user; do echo "$c $(/bin/probe $c)"; done; fi',
);

const ac = new AbortController();
let abortedAt = 0;
const aborted = run(`sleep ${nap} & sleep ${nap} & sleep ${nap}`, {}, { signal: ac.signal });
let sleepersBefore: string[] = [];
void (async () => {
  // the three sleeps seen first (proves the check below can see the container's processes); on a
  // loaded machine they start late, so wait for them (up to 10 s) rather than a fixed 500 ms
  for (let i = 0; i < 100 && (sleepersBefore = await sleepers()).length < 3; i++)
    await new Promise((r) => setTimeout(r, 100));
  abortedAt = Date.now();
  ac.abort(new Error('user abort'));
})();
const abort = { ...(await aborted), ms: Date.now() - abortedAt, sleepersBefore, sleepersAfter: await sleepers() };

console.log(
  JSON.stringify({
    uid: process.getuid?.(),
    name: ex.name,
    userNs: ex instanceof BuiltinExecutor ? ex.userNs?.kind : undefined,
    basic,
    host,
    written,
    memory,
    pids,
    user1000,
    by1000,
    builder,
    hostNet,
    seccomp,
    abort,
    tmpLeft: await fs.readdir(tmpDir),
  }),
);
