import { describe, expect, it } from 'vitest';
import { cgroupProcsFiles, type CgroupLayout } from './cgroup-layout.ts';

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
