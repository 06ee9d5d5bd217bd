/**
 * build() settles its steps' volatile snapshot commits at its end (review of a202d03, M2): after a
 * build, and after one that fails at its second step, metadata.json names every committed chain and
 * metadata.volatile.json none, so they outlive a reboot.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '@vlab/image';
import { freshStore, makeContext, removeStore } from './helpers.ts';

let root: string;
beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  await removeStore(root);
});

type Doc = { snapshots: Record<string, { kind: string; parent?: string }> };
const doc = async (f: string): Promise<Doc['snapshots']> =>
  (JSON.parse(await fsp.readFile(path.join(root, 'snapshots', f), 'utf8').catch(() => '{"snapshots":{}}')) as Doc)
    .snapshots;
/** The committed keys of `snaps`, and the longest parent chain among them. */
function committed(snaps: Doc['snapshots']): { keys: string[]; depth: number } {
  const keys = Object.keys(snaps).filter((k) => snaps[k]!.kind === 'committed');
  const depth = (k: string | undefined): number => (k && snaps[k] ? 1 + depth(snaps[k].parent) : 0);
  return { keys, depth: Math.max(0, ...keys.map((k) => depth(k))) };
}

describe('build() settles the snapshots its steps committed', () => {
  it('a successful build: its steps chain is in metadata.json, nothing committed volatile', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n' });
    const before = committed(await doc('metadata.json')).keys.length;
    await build({ context: ctx, root });
    const durable = committed(await doc('metadata.json'));
    expect(durable.keys.length).toBe(before + 2);
    expect(durable.depth).toBeGreaterThanOrEqual(3); // the base layer(s) and the two RUNs on them
    expect(committed(await doc('metadata.volatile.json')).keys).toEqual([]);
  });

  it('a build failing at its second step: the first step is settled all the same', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo c > /c\nRUN exit 3\n' });
    const before = committed(await doc('metadata.json')).keys.length;
    await expect(build({ context: ctx, root })).rejects.toThrow();
    expect(committed(await doc('metadata.json')).keys.length).toBe(before + 1);
    expect(committed(await doc('metadata.volatile.json')).keys).toEqual([]);
  });
});
