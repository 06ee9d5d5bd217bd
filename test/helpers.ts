import { execFileSync, execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll } from 'vitest';
import { build, fsck, type BuildEvent, type BuildOptions } from '@vlab/image';
import { cgroupParentOf } from '../packages/core/src/store/paths.ts';
import { removeCgroupParent } from '../packages/core/src/exec/testing/suite.ts';
import { sweepOrphanCgroups } from '../packages/core/src/exec/cgroups.ts';

export const exec = promisify(execFile);
export const repo = path.resolve(import.meta.dirname, '..');

/** A fresh store with `busybox:latest` imported by the example's own script. */
export async function freshStore(): Promise<string> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-e2e-'));
  execFileSync('bash', [path.join(repo, 'examples/hello/make-base.sh')], {
    env: { ...process.env, VLAB_ROOT: root, SOURCE_DATE_EPOCH: '0' },
    stdio: 'pipe',
  });
  return root;
}

export async function removeStore(root: string): Promise<void> {
  // The store's RUNs made their cgroups under its own parent (cgroupParentOf): left empty, removed here.
  const parent = cgroupParentOf(root);
  // Snapshots may hold overlay work dirs owned by root with odd modes; rm -rf handles them.
  await exec('rm', ['-rf', root]);
  if (process.getuid?.() === 0) {
    await sweepOrphanCgroups(parent); // a build killed mid-RUN left one
    await removeCgroupParent(parent).catch(() => undefined);
  }
}

/** The dirs makeContext and umociUnpack made in this test file: removed after it (they were left in /tmp). */
const madeDirs: string[] = [];
afterAll(async () => {
  await Promise.all(madeDirs.splice(0).map((d) => fsp.rm(d, { recursive: true, force: true })));
});

/** Write a context dir from a map of files (removed after the test file). */
export async function makeContext(files: Record<string, string>): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-ctx-'));
  madeDirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    await fsp.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fsp.writeFile(path.join(dir, name), content);
  }
  return dir;
}

/** build() collecting its events. */
export async function buildWithEvents(
  opts: BuildOptions,
): Promise<{ result: Awaited<ReturnType<typeof build>>; events: BuildEvent[] }> {
  const events: BuildEvent[] = [];
  const result = await build({ ...opts, onEvent: (e) => events.push(e) });
  return { result, events };
}

export function cachedSteps(events: BuildEvent[]): string[] {
  return events.filter((e) => e.type === 'step-cached').map((e) => (e as { name: string }).name);
}

export function missedSteps(events: BuildEvent[]): { name: string; reason: string }[] {
  return events
    .filter((e) => e.type === 'step-miss')
    .map((e) => ({ name: (e as { name: string }).name, reason: (e as { reason: string }).reason }));
}

/** `umoci unpack` of an image in the store (an OCI layout) into a bundle (removed after the test file); returns its rootfs. */
export async function umociUnpack(storeRoot: string, tag: string): Promise<string> {
  const bundle = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-umoci-'));
  madeDirs.push(bundle);
  await fsp.rm(bundle, { recursive: true });
  await exec('umoci', ['unpack', '--image', `${storeRoot}:${tag}`, bundle]);
  return path.join(bundle, 'rootfs');
}

export async function skopeoInspect(storeRoot: string, tag: string): Promise<Record<string, unknown>> {
  const { stdout } = await exec('skopeo', ['inspect', '--config', `oci:${storeRoot}:${tag}`]);
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** `vbuild fsck` of a store after a suite of hostile cases: every problem it lists, as lines (none: clean). */
/** The snapshot store's records: metadata.json's and the build temporaries' (metadata.volatile.json). */
export async function snapshotRecords(
  storeRoot: string,
): Promise<Record<string, { id: string; kind: string; parent?: string }>> {
  const read = (f: string) =>
    fsp.readFile(path.join(storeRoot, 'snapshots', f), 'utf8').then(
      (t) => (JSON.parse(t) as { snapshots: Record<string, { id: string; kind: string }> }).snapshots,
      () => ({}),
    );
  return { ...(await read('metadata.volatile.json')), ...(await read('metadata.json')) };
}

/** When either snapshot metadata file was last replaced (0: none yet). */
export async function snapshotMetaMtime(storeRoot: string): Promise<number> {
  const t = (f: string) =>
    fsp.stat(path.join(storeRoot, 'snapshots', f)).then(
      (s) => s.mtimeMs,
      () => 0,
    );
  return Math.max(await t('metadata.json'), await t('metadata.volatile.json'));
}

export async function fsckProblems(storeRoot: string): Promise<string[]> {
  const report = await fsck(storeRoot);
  return report.problems.map((p) => `${p.kind} ${p.target}: ${p.message}`);
}

/** An HTTP server on 127.0.0.1 (an ephemeral port) for a test; `close` ends its connections too. */
export async function serveLoopback(
  handler: http.RequestListener,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
