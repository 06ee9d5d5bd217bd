/**
 * Run by cgroup-layout.test.ts inside `unshare -C` (a cgroup namespace whose root is its own
 * cgroup, with the host's cgroup mounts, whose roots are now above it): prints, as JSON, the
 * cgroup.procs files its own /proc/self/cgroup maps to, and whether each lists its pid.
 */
import { readFileSync } from 'node:fs';
import { cgroupProcsFiles, detectCgroupLayout } from '../cgroup-layout.ts';

const files = cgroupProcsFiles(readFileSync('/proc/self/cgroup', 'utf8'), await detectCgroupLayout());
const lists = (f: string) => {
  try {
    return readFileSync(f, 'utf8').split('\n').includes(String(process.pid));
  } catch {
    return false;
  }
};
process.stdout.write(JSON.stringify(files.map((f) => ({ file: f, listsUs: lists(f) }))));
