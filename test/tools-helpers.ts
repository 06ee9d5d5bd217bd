/** What the image-tool tests compute on their own: an image's tree through UnionView over its layer tars. */
import { createHash } from 'node:crypto';
import { UnionView } from '@vlab/overlay';
import { Store } from '@vlab/image';

export interface TreeEntry {
  mode: number;
  size: number;
  sha?: string;
  link?: string;
}

/** Every path of the image `ref` names, as the union of its layer tars shows it. */
export async function imageTree(root: string, ref: string): Promise<Map<string, TreeEntry>> {
  const store = await Store.open(root);
  const img = await store.resolve(ref);
  if (!img) throw new Error(`no image ${ref}`);
  const view = new UnionView(img.manifest.layers.map((l) => store.blobs.path(l.digest)));
  const out = new Map<string, TreeEntry>();
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await view.readdir(dir)).sort()) {
      const p = dir ? `${dir}/${name}` : name;
      const st = await view.stat(p);
      const e: TreeEntry = { mode: st.mode, size: st.isFile() ? st.size : 0 };
      if (st.isFile())
        e.sha = createHash('sha256')
          .update(await view.readFile(p))
          .digest('hex');
      if (st.isSymbolicLink()) e.link = await view.readlink(p);
      out.set(p, e);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk('');
  return out;
}
