/**
 * The isolation regression checks of the torture suite, run by `executorSuite` for every executor:
 * one hostile operation at a time from inside a RUN, through the static probe (probe.c), which
 * prints `ok` or `denied ERRNO`. Each check has a positive control where one makes sense (the
 * same probe succeeding where it should), so that a broken probe cannot pass as "denied".
 * Host-side targets are marker files and processes this file makes in its own scratch dir.
 */
import { beforeEach, afterEach, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Executor, ExecutorOptions, RunSpec } from '../types.ts';
import { findHostTool } from '../host-tools.ts';
import { installProbe } from './probe.ts';
import { makeBusyboxRootfs } from './rootfs.ts';
import { useExecutor } from './fixture.ts';

const execFileP = promisify(execFile);

export type IsolationFactory = (opts: ExecutorOptions) => Promise<Executor>;

/** Docker's masked paths (moby oci/defaults.go, 2024+: /proc/interrupts added): each must read as empty. */
const DOCKER_MASKED = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/**
 * A block device the host's root can open through a freshly made node: the root disk, else
 * loop0 (some sandboxes forbid the disk even to the host's root). Undefined when neither opens.
 */
async function openableBlockDevice(scratch: string): Promise<[number, number] | undefined> {
  const dev = (await fs.stat('/')).dev;
  const disk: [number, number] = [Math.floor(dev / 256) & 0xfff, (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00)];
  for (const [major, minor] of [disk, [7, 0] as [number, number]]) {
    const node = path.join(scratch, `blk-${major}-${minor}`);
    try {
      await execFileP('mknod', ['-m', '600', node, 'b', String(major), String(minor)]);
      await (await fs.open(node, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)).close();
      return [major, minor];
    } catch {
      /* try the next */
    } finally {
      await fs.rm(node, { force: true });
    }
  }
  return undefined;
}

export function isolationSuite(name: string, factory: IsolationFactory): void {
  describe(`isolation: ${name}`, () => {
    const fx = useExecutor(`iso-${name}`, factory);
    let root: string;
    let probe = false;

    beforeEach(async () => {
      root = await makeBusyboxRootfs(fx.base);
      probe = await installProbe(root);
      // The builder runs a RUN on a mounted snapshot: the rootfs is a mount point here too
      // (mount(8) -a takes a self-bind of a mount point for done, a plain dir hides that).
      await execFileP('mount', ['--bind', root, root]);
    });
    afterEach(async () => {
      await execFileP('umount', [root]).catch(() => execFileP('umount', ['-l', root]));
      await fs.rm(root, { recursive: true, force: true });
    });

    const run = async (script: string, extra: Partial<RunSpec> = {}, on: Executor = fx.ex) => {
      let out = '';
      const r = await on.run(
        { rootfs: root, argv: ['/bin/sh', '-c', script], env: [], cwd: '/', ...extra },
        { onOutput: (_s, c) => (out += c) },
      );
      return { code: r.exitCode, out };
    };
    const needProbe = (ctx: { skip: () => void }) => {
      if (!probe) ctx.skip();
    };

    it('no host fd reaches the container (probe fds)', async (ctx) => {
      needProbe(ctx);
      expect((await run('probe fds')).out).toBe('none\n');
    });

    it("Docker's masked paths read as empty; /proc/sys, /proc/sysrq-trigger and /sys are read-only", async (ctx) => {
      needProbe(ctx);
      const present: string[] = [];
      for (const p of DOCKER_MASKED)
        if (
          await fs.stat(p).then(
            () => true,
            () => false,
          )
        )
          present.push(p);
      expect(present.length).toBeGreaterThan(0);
      // A file reads 0 bytes, a dir lists nothing (sh: `cat` of a dir fails, hence the two tests).
      const script = present
        .map((p) => `if [ -d ${p} ]; then echo "${p} $(ls -A ${p} | wc -l)"; else echo "${p} $(cat ${p} | wc -c)"; fi`)
        .join('; ');
      const masked = await run(script);
      expect(masked.out.trim().split('\n')).toEqual(present.map((p) => `${p} 0`));
      const writes: string[] = [];
      for (const p of [
        '/proc/sys/kernel/hostname',
        '/proc/sys/vm/drop_caches',
        '/proc/sysrq-trigger',
        '/sys/class/net/lo/tx_queue_len',
        '/sys/kernel/uevent_helper',
        '/sys/kernel/mm/transparent_hugepage/enabled',
      ]) {
        if (
          await fs.stat(p).then(
            () => true,
            () => false,
          )
        )
          writes.push(p); // this kernel has it
      }
      expect(writes.length).toBeGreaterThan(2);
      const w = await run(writes.map((p) => `probe open ${p} w`).join('; '));
      expect(w.out.trim().split('\n')).toEqual(writes.map(() => 'denied EROFS'));
      // control: the probe can write where writing is allowed
      expect((await run('probe open /tmp/x w')).out).toBe('denied ENOENT\n');
      expect((await run('touch /tmp/x; probe open /tmp/x w')).out).toBe('ok\n');
    });

    it("the host's /proc/1/root and host processes are out of reach (pid namespace)", async (ctx) => {
      needProbe(ctx);
      const marker = path.join(fx.base, 'host-marker');
      await fs.writeFile(marker, 'host secret\n');
      const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        const pid = sleeper.pid!;
        const r = await run(
          `probe open /proc/1/root${marker} r; probe open /proc/${pid}/root${marker} r; probe ptrace ${pid}`,
        );
        const [viaInit, viaPid, ptraceHost] = r.out.trim().split('\n');
        expect(viaInit).toBe('denied ENOENT'); // /proc/1 is the container's own pid 1
        expect(viaPid).toBe('denied ENOENT'); // the host pid does not exist in here
        expect(ptraceHost).toBe('denied ESRCH');
        // control: the same read of the container's own file works
        expect((await run('probe open /proc/1/root/etc/passwd r')).out).toBe('ok\n');
      } finally {
        sleeper.kill('SIGKILL');
      }
      expect(await fs.readFile(marker, 'utf8')).toBe('host secret\n');
    });

    it('the host disk can be neither mounted nor opened, even without the v1 devices cgroup', async (ctx) => {
      needProbe(ctx);
      const blk = await openableBlockDevice(fx.base);
      if (!blk) return ctx.skip(); // the host's root itself can open no block device node here
      const [major, minor] = blk;
      // A block node for the host disk that comes with the image (made host-side, like a layer would).
      await execFileP('mknod', ['-m', '600', path.join(root, 'disk'), 'b', String(major), String(minor)]);
      const script = `probe mknod-open /tmp/sda ${major} ${minor}; probe open /disk r; mkdir -p /mnt; probe mount /disk /mnt ext4; probe open /dev/null w; probe open /dev/zero r`;
      const expected = [/^denied E(PERM|ACCES)$/, /^denied E(PERM|ACCES)$/, /^denied EPERM$/, /^ok$/, /^ok$/];
      const check = (out: string) =>
        out
          .trim()
          .split('\n')
          .forEach((l, i) => expect(l).toMatch(expected[i]!));
      check((await run(script)).out);
      // Pure cgroup v2 has no v1 devices controller: the built-in executor must hold without it.
      // The OCI runtimes always filter devices themselves (v1 cgroup, or eBPF on v2).
      if (name.startsWith('builtin')) {
        const bare = await factory({ cgroupParent: fx.cgroupParent, tmpDir: fx.tmpDir, deviceCgroup: false });
        check((await run(script, {}, bare)).out);
      }
    });

    it('nodev on the root, /dev and extra binds where the executor relies on it (mountinfo)', async () => {
      const src = path.join(fx.base, 'bind-src');
      await fs.mkdir(src, { recursive: true });
      const bind = (target: string, readonly = false) => ({ type: 'bind' as const, source: src, target, readonly });
      // /mnt/stack twice: the second (ro) is stacked on the first, as every runtime mounts in order.
      const mounts = [bind('/mnt/rw'), bind('/mnt/ro', true), bind('/mnt/stack'), bind('/mnt/stack', true)];
      const r = await run('cat /proc/self/mountinfo', { mounts });
      expect(r.code).toBe(0);
      const flags = mountFlags(r.out);
      // Controls, every executor: a flag that is there (/proc) and one that is not (ptys must open).
      expect(flags('/proc')).toContain('nodev');
      expect(flags('/dev/pts')).not.toContain('nodev');
      // Extra binds (build context, caches) are nodev in every executor (our OCI config says so too).
      expect(flags('/mnt/rw')).toContain('nodev');
      expect(flags('/mnt/ro')).toEqual(expect.arrayContaining(['ro', 'nodev']));
      expect(flags('/mnt/stack'), 'the stacked bind').toEqual(expect.arrayContaining(['ro', 'nodev']));
      // The built-in executors filter devices by nodev alone (pure cgroup v2 has no devices
      // controller and they load no eBPF program): the root and /dev must be nodev. runc filters
      // with its own device cgroup (v1 devices, eBPF on v2) and keeps the nodes it makes in /dev
      // openable, so it needs neither: nothing to require there.
      if (name.startsWith('builtin')) {
        expect(flags('/'), 'the root mount').toContain('nodev');
        expect(flags('/dev')).toContain('nodev');
      }
    });

    it('network none: a server on the host loopback is unreachable; with host networking it is', async (ctx) => {
      needProbe(ctx);
      let connections = 0;
      const server = net.createServer((s) => {
        connections++;
        s.destroy();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as net.AddressInfo).port;
      try {
        expect((await run(`probe connect 127.0.0.1 ${port}`)).out).toBe('denied ECONNREFUSED\n');
        expect(connections).toBe(0);
        expect((await run(`probe connect 127.0.0.1 ${port}`, { network: 'host' })).out).toBe('ok\n'); // control
      } finally {
        server.close();
      }
    });

    it('mountpoint cleanup does not follow symlinks the container put in place of created dirs', async () => {
      // Host dirs shaped like what cleanup will look for: b/c (to be rmdir'd), y (mtime to restore).
      const scratch = path.join(fx.base, 'host-dirs');
      await fs.mkdir(path.join(scratch, 'b/c'), { recursive: true });
      await fs.mkdir(path.join(scratch, 'y'));
      const old = new Date('2001-02-03T04:05:06Z');
      await fs.utimes(path.join(scratch, 'y'), old, old);
      await fs.mkdir(path.join(root, 'x/y'), { recursive: true });
      // /a, /a/b, /a/b/c are made for the run; /x/y exists and gets /x/y/new made in it.
      const mounts = [
        { type: 'tmpfs' as const, target: '/a/b/c' },
        { type: 'tmpfs' as const, target: '/x/y/new' },
      ];
      const r = await run(`mv /a /olda && ln -s ${scratch} /a && mv /x /oldx && ln -s ${scratch} /x && echo swapped`, {
        mounts,
      });
      expect(r.out).toBe('swapped\n');
      expect((await fs.stat(path.join(scratch, 'b/c'))).isDirectory()).toBe(true);
      expect((await fs.stat(path.join(scratch, 'y'))).mtime).toEqual(old);
      expect(await fs.readlink(path.join(root, 'a'))).toBe(scratch); // the container's output stays
    });

    it('no controlling terminal: TIOCSTI cannot type into the terminal vbuild runs in', async (ctx) => {
      needProbe(ctx);
      const script = await which('script');
      if (!script) return ctx.skip(); // util-linux script(1) gives the run a pty
      const out = path.join(fx.base, 'tty-out.json');
      const child = path.join(path.dirname(new URL(import.meta.url).pathname), 'tty-script.ts');
      const cmd = [process.execPath, '--import', 'tsx', child, name, root, fx.tmpDir, fx.cgroupParent, out]
        .map((s) => `'${s}'`)
        .join(' ');
      // script(1) runs cmd on a new pty (its controlling terminal); what the pty shows comes back.
      const shown = await execFileP(script, ['-qfec', cmd, '/dev/null'], { cwd: path.dirname(child), timeout: 60_000 });
      const r = JSON.parse(await fs.readFile(out, 'utf8')) as { hostTty: string; probes: string };
      expect(r.hostTty).toBe('ok'); // control: vbuild itself has the pty as its terminal
      expect(r.probes.trim().split('\n')).toEqual(['denied ENXIO', 'denied ENXIO', 'denied ENOTTY']);
      expect(shown.stdout).not.toContain('#'); // the character TIOCSTI would have typed
    });
  });
}

/** The per-mount options of the visible (topmost) mount at each mount point of a mountinfo text. */
function mountFlags(mountinfo: string): (target: string) => string[] {
  const entries = mountinfo
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map((f) => ({ id: f[0], parent: f[1], target: f[4], opts: f[5]!.split(',') }));
  return (target) => {
    const at = entries.filter((e) => e.target === target);
    const top = at.filter((e) => !at.some((o) => o.parent === e.id));
    expect(top, `one visible mount at ${target} in\n${mountinfo}`).toHaveLength(1);
    return top[0]!.opts;
  };
}

const which = (cmd: string) => findHostTool(cmd, ['/usr/bin', '/bin', '/usr/sbin', '/sbin']);
