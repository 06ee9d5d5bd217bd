/**
 * One executor for a describe block of the shared suites, with its own temp dirs and cgroup
 * parent: made before all tests, removed after all (the cgroup parent too, in every hierarchy).
 */
import { afterAll, beforeAll } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Executor, ExecutorOptions } from '../types.ts';
import { removeCgroupParent } from './suite.ts';

export interface ExecutorFixture {
  ex: Executor;
  /** Holds the tests' rootfs dirs. */
  base: string;
  /** The executor's temp dirs: empty again after every run. */
  tmpDir: string;
  cgroupParent: string;
}

/** `label` names the cgroup parent (`vlab-test-<label>-<pid>`) and the temp dir. */
export function useExecutor(label: string, factory: (opts: ExecutorOptions) => Promise<Executor>): ExecutorFixture {
  const fx = { cgroupParent: `vlab-test-${label}-${process.pid}` } as ExecutorFixture;
  beforeAll(async () => {
    fx.base = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-suite-'));
    fx.tmpDir = path.join(fx.base, 'tmp');
    await fs.mkdir(fx.tmpDir);
    fx.ex = await factory({ cgroupParent: fx.cgroupParent, tmpDir: fx.tmpDir });
  });
  afterAll(async () => {
    await removeCgroupParent(fx.cgroupParent);
    if (fx.base) await fs.rm(fx.base, { recursive: true, force: true });
  });
  return fx;
}
