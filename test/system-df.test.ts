/**
 * `vbuild system df` against the store's files: images built here on one base, a container with
 * an upper layer (and a running one), volumes with data, build-cache-only layers (an image built
 * and removed) and unreferenced blobs (an imported image removed). The test sizes everything
 * itself — du of the blob files and of each snapshot dir, the images' reach read from the
 * manifests and configs, chain ids computed here — and then runs the real prunes: each frees, on
 * disk, what df said its row could reclaim.
 */
import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, containers, importRootfs, rmi, run, systemDf, volumes, type DfReport } from '@vlab/image';
import { exec, freshStore, makeContext, removeStore, snapshotRecords } from './helpers.ts';
import { cli } from './containers-helpers.ts';

let root: string;
let ctx: string;
let running: string;
const at = () => ({ root });

/** du's bytes (allocated blocks) of each path given, the paths themselves included. */
async function du(paths: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (!paths.length) return out;
  const { stdout } = await exec('du', ['-s', '-B1', ...paths], { maxBuffer: 16 << 20 });
  for (const line of stdout.trim().split('\n')) {
    const tab = line.indexOf('\t');
    out.set(line.slice(tab + 1), Number(line.slice(0, tab)));
  }
  return out;
}
const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

/** du of a directory's content (the directory's own block left out). */
async function contentBytes(dir: string): Promise<number> {
  const st = await fsp.stat(dir).catch(() => undefined);
  if (!st) return 0;
  return (await du([dir])).get(dir)! - st.blocks * 512;
}

interface Disk {
  blobs: Map<string, number>; // digest → bytes
  committed: Map<string, number>; // chain id → bytes of its dir
  active: Map<string, number>; // key → bytes of its upper
  volumes: Map<string, number>; // name → bytes of its data
}

/** The store as the files say, without vbuild's code. */
async function disk(): Promise<Disk> {
  const dir = path.join(root, 'blobs/sha256');
  const names = await fsp.readdir(dir);
  const sizes = await du(names.map((n) => path.join(dir, n)));
  const blobs = new Map(names.map((n) => [`sha256:${n}`, sizes.get(path.join(dir, n))!]));
  const meta = { snapshots: await snapshotRecords(root) };
  const committed = new Map<string, number>();
  const active = new Map<string, number>();
  for (const [key, s] of Object.entries(meta.snapshots)) {
    const bytes = await contentBytes(path.join(root, 'snapshots/snapshots', s.id, 'fs'));
    (s.kind === 'committed' ? committed : active).set(key, bytes);
  }
  const vols = new Map<string, number>();
  for (const v of await fsp.readdir(path.join(root, 'volumes')).catch(() => [] as string[]))
    if (!v.startsWith('.')) vols.set(v, await contentBytes(path.join(root, 'volumes', v, '_data')));
  return { blobs, committed, active, volumes: vols };
}

const readJson = async (digest: string) =>
  JSON.parse(await fsp.readFile(path.join(root, 'blobs/sha256', digest.slice(7)), 'utf8'));

function chains(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds)
    out.push(
      out.length
        ? `sha256:${createHash('sha256')
            .update(`${out.at(-1)} ${d}`)
            .digest('hex')}`
        : d,
    );
  return out;
}

/**
 * Blobs (`b:digest`) and snapshots (`s:chain id`) an image (manifest digest) reaches, read from its
 * JSON here (a first layer's chain id is its diff_id, the digest of its uncompressed blob: apart).
 */
async function reachOf(manifest: string): Promise<string[]> {
  const m = await readJson(manifest);
  const cfg = await readJson(m.config.digest);
  return [
    ...[manifest, m.config.digest, ...m.layers.map((l: { digest: string }) => l.digest)].map((b) => `b:${b}`),
    ...chains(cfg.rootfs.diff_ids).map((c) => `s:${c}`),
  ];
}

const bytesOf = (d: Disk, keys: Iterable<string>) =>
  sum([...new Set(keys)].map((k) => (k.startsWith('b:') ? d.blobs : d.committed).get(k.slice(2)) ?? 0));
const row = (r: DfReport, type: string) => r.rows.find((x) => x.type === type)!;

beforeAll(async () => {
  root = await freshStore();
  ctx = await makeContext({});
  const blob = (n: number) => randomBytes(n).toString('base64');
  await fsp.writeFile(path.join(ctx, 'a.txt'), blob(150_000));
  await fsp.writeFile(path.join(ctx, 'b.txt'), blob(120_000));
  await fsp.writeFile(path.join(ctx, 'c.txt'), blob(90_000));
  for (const x of ['a', 'b', 'c'])
    await build({ root, context: ctx, dockerfile: { text: `FROM busybox\nCOPY ${x}.txt /\n` }, tags: [`df-${x}`] });
  await rmi('df-c', at()); // its layer: only the build cache reaches it now
  // an imported image, removed: nothing reaches its blobs
  const junk = path.join(ctx, 'junk');
  await fsp.mkdir(junk);
  await fsp.writeFile(path.join(junk, 'j.bin'), randomBytes(60_000));
  await exec('tar', ['-cf', path.join(ctx, 'junk.tar'), '-C', junk, '.']);
  await importRootfs(path.join(ctx, 'junk.tar'), 'df-junk', at());
  await rmi('df-junk', at());
  // an exited container with 300 kB in its upper layer, a running one with a volume
  const x = await run({
    ...at(),
    image: 'df-a',
    name: 'df-exited',
    cmd: ['sh', '-c', 'head -c 300000 /dev/urandom > /big'],
  });
  expect(x.exitCode).toBe(0);
  const used = await volumes.create('df-used', at());
  await fsp.writeFile(path.join(used.mountpoint, 'u.bin'), randomBytes(64_000));
  const free = await volumes.create('df-free', at());
  await fsp.writeFile(path.join(free.mountpoint, 'f.bin'), randomBytes(80_000));
  const r = await run({
    ...at(),
    image: 'df-b',
    name: 'df-running',
    cmd: ['sleep', '120'],
    volumes: ['df-used:/data'],
    detach: true,
  });
  running = r.id;
}, 120_000);

afterAll(async () => {
  if (running) await containers.remove(running, { force: true, root }).catch(() => undefined);
  if (root) await removeStore(root);
  if (ctx) await fsp.rm(ctx, { recursive: true, force: true });
});

describe('vbuild system df', () => {
  let df: DfReport;
  let d: Disk;

  it('sizes images (shared base once), cache, containers and volumes as du of the store files', async () => {
    df = await systemDf(at());
    d = await disk();
    const idx = JSON.parse(await fsp.readFile(path.join(root, 'index.json'), 'utf8'));
    const ctrs = await containers.list({ all: true, root });
    const imageManifests = new Set<string>([
      ...idx.manifests.map((m: { digest: string }) => m.digest),
      ...ctrs.map((c) => c.config.imageDigest),
    ]);
    const imageKeys = new Set<string>();
    for (const m of imageManifests) for (const k of await reachOf(m)) imageKeys.add(k);
    const cacheKeys = new Set<string>();
    for (const f of await fsp.readdir(path.join(root, 'cache/records'))) {
      const rec = JSON.parse(await fsp.readFile(path.join(root, 'cache/records', f), 'utf8'));
      const layers = rec.layers as { digest: string; diffId: string }[];
      for (const k of [
        ...layers.map((l) => `b:${l.digest}`),
        ...chains(layers.map((l) => l.diffId)).map((c) => `s:${c}`),
      ])
        if (!imageKeys.has(k)) cacheKeys.add(k);
    }
    const everything = [...[...d.blobs.keys()].map((k) => `b:${k}`), ...[...d.committed.keys()].map((k) => `s:${k}`)];
    const unreferenced = everything.filter((k) => !imageKeys.has(k) && !cacheKeys.has(k));
    expect(unreferenced.length).toBeGreaterThan(0); // df-junk's and df-c's manifest and config
    expect(cacheKeys.size).toBeGreaterThan(0); // df-c's layer

    const images = row(df, 'Images');
    expect(images.total).toBe(imageManifests.size); // busybox, df-a, df-b
    expect(images.active).toBe(2);
    expect(images.size).toBe(bytesOf(d, [...imageKeys, ...unreferenced]));
    expect(images.reclaimable).toBe(bytesOf(d, unreferenced));
    const cache = row(df, 'Build Cache');
    expect(cache.size).toBe(bytesOf(d, cacheKeys));
    expect(cache.reclaimable).toBe(bytesOf(d, cacheKeys));
    expect(images.size + cache.size).toBe(sum(d.blobs.values()) + sum(d.committed.values()));

    // layers shared between images once: df-a's base layer is busybox's, counted once in the row
    const a = df.images.find((i) => i.ref.endsWith('df-a:latest'))!;
    const b = df.images.find((i) => i.ref.endsWith('df-b:latest'))!;
    const base = df.images.find((i) => i.ref.endsWith('busybox:latest'))!;
    const aKeys = await reachOf(a.digest);
    expect(a.size).toBe(bytesOf(d, aKeys));
    const baseKeys = new Set(await reachOf(base.digest));
    expect(a.sharedSize).toBe(
      bytesOf(
        d,
        aKeys.filter((k) => baseKeys.has(k)),
      ),
    );
    expect(a.sharedSize).toBeGreaterThan(500_000); // busybox's layer blob and its unpacked snapshot
    expect(a.uniqueSize).toBeGreaterThan(150_000);
    expect(images.size).toBeLessThan(a.size + b.size + base.size);
    expect(a.containers).toBe(1);

    const c = row(df, 'Containers');
    const exited = ctrs.find((x) => x.config.name === 'df-exited')!;
    const run = ctrs.find((x) => x.config.name === 'df-running')!;
    expect(c).toMatchObject({ total: 2, active: 1 });
    expect(c.size).toBe(d.active.get(exited.config.snapshotKey)! + d.active.get(run.config.snapshotKey)!);
    expect(c.reclaimable).toBe(d.active.get(exited.config.snapshotKey));
    expect(c.reclaimable).toBeGreaterThanOrEqual(300_000);

    const v = row(df, 'Local Volumes');
    expect(v).toMatchObject({ total: 2, active: 1 });
    expect(v.size).toBe(d.volumes.get('df-used')! + d.volumes.get('df-free')!);
    expect(v.reclaimable).toBe(d.volumes.get('df-free'));
    expect(v.reclaimable).toBeGreaterThanOrEqual(80_000);
  });

  it('the CLI prints the same numbers: the table, -v, and --format json', async () => {
    const json = await cli(root, ['system', 'df', '--format', 'json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).rows).toEqual(df.rows);
    const t = await cli(root, ['system', 'df']);
    expect(t.code).toBe(0);
    const lines = t.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/)[0])).toEqual([
      'Images',
      'Containers',
      'Local Volumes',
      'Build Cache',
    ]);
    expect(lines[3]).toMatch(/^Local Volumes\s+2\s+1\s+\S+\s+\S+ \(\d+%\)$/);
    const v = await cli(root, ['system', 'df', '-v']);
    expect(v.code).toBe(0);
    for (const h of [
      'Images space usage:',
      'Containers space usage:',
      'Local Volumes space usage:',
      'Build cache usage:',
    ])
      expect(v.stdout).toContain(h);
    expect(v.stdout).toMatch(/\ndf-used\s+1\s+\S+\n/);
    expect(v.stdout).toMatch(/df-exited\n/);
  });

  it('each real prune frees on disk what df said its row could reclaim', async () => {
    const total = (x: Disk) => ({
      vol: sum(x.volumes.values()),
      ctr: sum(x.active.values()),
      content: sum(x.blobs.values()) + sum(x.committed.values()),
    });
    let before = total(await disk());
    expect(await volumes.prune(at())).toEqual(['df-free']);
    let after = total(await disk());
    expect(before.vol - after.vol).toBe(row(df, 'Local Volumes').reclaimable);

    before = after;
    expect((await containers.prune(at())).length).toBe(1);
    after = total(await disk());
    expect(before.ctr - after.ctr).toBe(row(df, 'Containers').reclaimable);
    expect(after.content).toBe(before.content);

    before = after;
    expect((await cli(root, ['prune'])).code).toBe(0);
    after = total(await disk());
    expect(before.content - after.content).toBe(row(df, 'Images').reclaimable);

    before = after;
    expect((await cli(root, ['prune', '--all'])).code).toBe(0);
    after = total(await disk());
    expect(before.content - after.content).toBe(row(df, 'Build Cache').reclaimable);

    const now = await systemDf(at());
    expect(now.rows.map((r) => r.reclaimable)).toEqual([0, 0, 0, 0]);
  });
});
