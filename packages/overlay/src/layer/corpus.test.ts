/** Real layers with whiteouts (go-containerregistry's image tarballs) applied in order. */
import { describe, it, expect, afterEach } from 'vitest';
import { promises as fs, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { apply } from './apply.ts';
import { listLayer } from './list.ts';
import { UnionView } from '../union-view.ts';

const dir = '/work/shared/corpus/layers/go-containerregistry/image-tarballs';

async function layersOf(file: string): Promise<Buffer[]> {
  const entries = await listLayer(Readable.from([await fs.readFile(path.join(dir, file))]));
  const byName = new Map(entries.map((e) => [e.name.replace(/^\.\//, ''), e.data]));
  const manifest = JSON.parse(byName.get('manifest.json')!.toString()) as { Layers: string[] }[];
  return manifest[0].Layers.map((l) => {
    const b = byName.get(l)!;
    return b[0] === 0x1f && b[1] === 0x8b ? gunzipSync(b) : b;
  });
}

describe.skipIf(!existsSync(dir))('go-containerregistry image tarballs', () => {
  let tmp: string | undefined;
  afterEach(async () => {
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it.each([
    ['whiteout_image.tar', { 'bar.txt': 'file' }],
    ['whiteout_dir.tar', { a: 'dir', 'a/baz': 'file', b: 'dir', 'b/bar': 'file' }],
    ['overwritten_file.tar', { 'bar.txt': 'file', 'foo.txt': 'symlink' }],
    ['content.tar', undefined],
  ])('%s', async (file, want) => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-corpus-'));
    if (!want) {
      // a bare layer
      const root = path.join(tmp, 'r');
      await fs.mkdir(root);
      await apply(Readable.from([await fs.readFile(path.join(dir, file))]), root, { whiteouts: 'oci' });
      expect((await fs.stat(path.join(root, 'bat'))).mode & 0o777).toBe(0o555);
      return;
    }
    const layers = await layersOf(file);
    // 1. native style: every layer applied into one dir, whiteouts delete
    const flat = path.join(tmp, 'flat');
    await fs.mkdir(flat);
    for (const l of layers) await apply(Readable.from([l]), flat, { whiteouts: 'oci' });
    // 2. overlay style: one dir per layer with overlay whiteouts, read through UnionView
    const dirs: string[] = [];
    for (const [i, l] of layers.entries()) {
      const d = path.join(tmp, `l${i}`);
      await fs.mkdir(d);
      await apply(Readable.from([l]), d, { whiteouts: 'overlay' });
      dirs.push(d);
    }
    const tars: string[] = [];
    for (const [i, l] of layers.entries()) {
      tars.push(path.join(tmp, `l${i}.tar`));
      await fs.writeFile(tars[i], l);
    }
    const seen: Record<string, string> = {};
    let seenU: Record<string, string> = {};
    const walk = async (rel: string) => {
      for (const n of (await fs.readdir(path.join(flat, rel))).sort()) {
        const r = rel ? `${rel}/${n}` : n;
        const st = await fs.lstat(path.join(flat, r));
        seen[r] = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
        if (st.isDirectory()) await walk(r);
      }
    };
    let u = new UnionView(dirs);
    const walkU = async (rel: string) => {
      for (const n of await u.readdir(rel)) {
        const r = rel ? `${rel}/${n}` : n;
        const st = await u.stat(r);
        seenU[r] = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
        if (st.isDirectory()) await walkU(r);
      }
    };
    await walk('');
    await walkU('');
    expect(seen).toEqual(want);
    expect(seenU).toEqual(want);
    u = new UnionView(tars); // the same stack read straight from the layer tars
    seenU = {};
    await walkU('');
    expect(seenU).toEqual(want);
  });
});
