import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cgroupProcsFiles, detectCgroupLayout, parseLayout, type CgroupLayout } from './cgroup-layout.ts';

const hybrid: CgroupLayout = {
  version: 'hybrid',
  controllers: ['cpu', 'cpuacct', 'memory', 'pids'],
  v1: { cpu: '/cg/cpu,cpuacct', cpuacct: '/cg/cpu,cpuacct', memory: '/cg/memory', pids: '/cg/pids' },
  unified: '/cg/unified',
  hierarchies: ['/cg/cpu,cpuacct', '/cg/memory', '/cg/pids', '/cg/systemd'],
  named: { 'name=systemd': '/cg/systemd' },
};

describe('cgroupProcsFiles: the cgroup.procs files of a /proc/PID/cgroup', () => {
  it('maps each hierarchy line to its mount (co-mounted, named, unified); skips the unmounted and the odd', () => {
    const text = [
      '12:pids:/user.slice/a',
      '11:cpu,cpuacct:/user.slice',
      '10:memory:/job/7',
      '9:name=systemd:/user.slice/session-3.scope',
      '8:rdma:/',
      '7:freezer:/gone (deleted)',
      '6:devices:/../escape',
      '0::/user.slice/session-3.scope',
      '',
    ].join('\n');
    expect(cgroupProcsFiles(text, hybrid)).toEqual([
      '/cg/pids/user.slice/a/cgroup.procs',
      '/cg/cpu,cpuacct/user.slice/cgroup.procs',
      '/cg/memory/job/7/cgroup.procs',
      '/cg/systemd/user.slice/session-3.scope/cgroup.procs',
      '/cg/unified/user.slice/session-3.scope/cgroup.procs',
    ]);
  });

  it('pure v2: the one line', () => {
    const v2: CgroupLayout = {
      version: 'v2',
      controllers: ['memory'],
      v1: {},
      unified: '/sys/fs/cgroup',
      hierarchies: [],
    };
    expect(cgroupProcsFiles('0::/ci/job-1\n', v2)).toEqual(['/sys/fs/cgroup/ci/job-1/cgroup.procs']);
  });
});

describe("parseLayout: a cgroup mount's root (mountinfo's 4th field)", () => {
  const line = (id: number, root: string, point: string, fs: string, opts: string) =>
    `${id} 20 0:${id} ${root} ${point} rw,nosuid - ${fs} ${fs} ${opts}`;

  it('a bind-mounted subtree (a container sharing the host namespace): names under it are under the mount point', () => {
    const v2 = parseLayout(line(30, '/docker/abc', '/sys/fs/cgroup', 'cgroup2', 'rw') + '\n');
    expect(cgroupProcsFiles('0::/docker/abc\n', v2)).toEqual(['/sys/fs/cgroup/cgroup.procs']);
    expect(cgroupProcsFiles('0::/docker/abc/run/x\n', v2)).toEqual(['/sys/fs/cgroup/run/x/cgroup.procs']);
    // outside the subtree: not visible here (not the mount's /other)
    expect(cgroupProcsFiles('0::/other\n', v2)).toEqual([]);
    expect(cgroupProcsFiles('0::/docker/abcd\n', v2)).toEqual([]);
    const v1 = parseLayout(
      [
        line(31, '/', '/sys/fs/cgroup', 'tmpfs', 'rw'),
        line(32, '/docker/abc', '/sys/fs/cgroup/memory', 'cgroup', 'rw,memory'),
        line(33, '/', '/sys/fs/cgroup/pids', 'cgroup', 'rw,pids'),
        line(34, '/docker/a\\040b', '/sys/fs/cgroup/systemd', 'cgroup', 'rw,xattr,name=systemd'),
      ].join('\n'),
    );
    expect(cgroupProcsFiles('4:memory:/docker/abc/s\n3:pids:/docker/abc\n2:name=systemd:/docker/a b/u\n', v1)).toEqual([
      '/sys/fs/cgroup/memory/s/cgroup.procs',
      '/sys/fs/cgroup/pids/docker/abc/cgroup.procs',
      '/sys/fs/cgroup/systemd/u/cgroup.procs',
    ]);
  });

  it('a mount point mounted twice (an overmount): the last line is the visible mount, its root counts', () => {
    const v2 = parseLayout(
      [
        line(30, '/docker/abc', '/sys/fs/cgroup', 'cgroup2', 'rw'),
        line(40, '/', '/sys/fs/cgroup', 'cgroup2', 'rw'),
      ].join('\n'),
    );
    expect(cgroupProcsFiles('0::/docker/abc/run\n', v2)).toEqual(['/sys/fs/cgroup/docker/abc/run/cgroup.procs']);
    const back = parseLayout(
      [
        line(30, '/', '/sys/fs/cgroup', 'cgroup2', 'rw'),
        line(40, '/docker/abc', '/sys/fs/cgroup', 'cgroup2', 'rw'),
      ].join('\n'),
    );
    expect(cgroupProcsFiles('0::/docker/abc/run\n', back)).toEqual(['/sys/fs/cgroup/run/cgroup.procs']);
  });

  it('a root above our cgroup namespace\'s ("/../.."): under the directory found for our root; not found: nothing', () => {
    const asked: [string, number, string[]][] = [];
    const layout = parseLayout(
      [
        line(40, '/../..', '/sys/fs/cgroup/memory', 'cgroup', 'rw,memory'),
        line(41, '/..', '/sys/fs/cgroup/pids', 'cgroup', 'rw,pids'),
        line(42, '/../other', '/sys/fs/cgroup/cpu', 'cgroup', 'rw,cpu'),
      ].join('\n'),
      (mount, up, keys) => {
        asked.push([mount, up, keys]);
        return mount.endsWith('memory') ? 'job/7' : undefined;
      },
    );
    expect(asked).toEqual([
      ['/sys/fs/cgroup/memory', 2, ['memory']],
      ['/sys/fs/cgroup/pids', 1, ['pids']],
    ]);
    expect(cgroupProcsFiles('4:memory:/\n5:memory:/sub\n3:pids:/\n1:cpu:/\n', layout)).toEqual([
      '/sys/fs/cgroup/memory/job/7/cgroup.procs',
      '/sys/fs/cgroup/memory/job/7/sub/cgroup.procs',
    ]);
  });
});

const root = process.getuid?.() === 0;
const hasUnshare = (() => {
  try {
    execFileSync('unshare', ['--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!root || !hasUnshare) console.warn('cgroup namespace test skipped: needs root and unshare (util-linux)');

describe.skipIf(!root || !hasUnshare)('inside a real cgroup namespace (unshare -C)', () => {
  it("our own /proc/self/cgroup maps to cgroup.procs files that list us, though the mounts' roots are above ours", async () => {
    const layout = await detectCgroupLayout();
    // a cgroup of our own, so that our namespace's root is not a hierarchy's root in any layout
    const mount = layout.unified ?? layout.v1.pids ?? Object.values(layout.v1)[0]!;
    const dir = path.join(mount, `vlab-cgns-test-${process.pid}`);
    fs.mkdirSync(dir);
    try {
      const script = fileURLToPath(new URL('./testing/cgroupns-script.ts', import.meta.url));
      const sh = `echo $$ > '${dir}/cgroup.procs' && exec unshare -C '${process.execPath}' --import tsx '${script}'`;
      const out = execFileSync('sh', ['-c', sh], { cwd: path.dirname(script), encoding: 'utf8', timeout: 20_000 });
      const files = JSON.parse(out) as { file: string; listsUs: boolean }[];
      expect(files.map((f) => f.file)).toContain(path.join(dir, 'cgroup.procs'));
      expect(files.filter((f) => !f.listsUs)).toEqual([]);
    } finally {
      fs.rmdirSync(dir);
    }
  });
});
