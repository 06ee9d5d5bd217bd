/** What a committed image records, read from a docker archive (`docker save`, `vbuild save --format docker`). */
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { exec } from './helpers.ts';

export interface Committed {
  /** The config fields a commit sets (null and empty ones left out). */
  config: Record<string, unknown>;
  /** The last history entry, without its time. */
  history: Record<string, unknown>;
  layers: number;
  /** The last layer's entries: `path type mode size sha256` (whiteouts: `path whiteout`). */
  files: string[];
}

const CONFIG_KEYS = ['User', 'Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'Labels', 'Volumes', 'ExposedPorts', 'OnBuild'];

const empty = (v: unknown) =>
  v === null || v === undefined || v === '' || (typeof v === 'object' && Object.keys(v as object).length === 0);

export async function committedImage(archive: string): Promise<Committed> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vcommit-'));
  try {
    await exec('tar', ['-C', dir, '-xf', archive]);
    const [m] = JSON.parse(await fsp.readFile(path.join(dir, 'manifest.json'), 'utf8')) as {
      Config: string;
      Layers: string[];
    }[];
    const img = JSON.parse(await fsp.readFile(path.join(dir, m!.Config), 'utf8')) as {
      config: Record<string, unknown>;
      history: Record<string, unknown>[];
    };
    const config = Object.fromEntries(CONFIG_KEYS.filter((k) => !empty(img.config[k])).map((k) => [k, img.config[k]]));
    const { created: _, ...history } = img.history.at(-1)!;
    const layer = path.join(dir, 'layer');
    await fsp.mkdir(layer);
    await exec('tar', ['-C', layer, '--numeric-owner', '-xpf', path.join(dir, m!.Layers.at(-1)!)]);
    return { config, history, layers: m!.Layers.length, files: await entries(layer) };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function entries(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const rel of (await fsp.readdir(root, { recursive: true })).sort()) {
    const p = path.join(root, rel);
    const st = await fsp.lstat(p);
    if (path.basename(rel).startsWith('.wh.')) out.push(`${rel} whiteout`);
    else if (st.isDirectory()) out.push(`${rel} dir ${(st.mode & 0o7777).toString(8)}`);
    else if (st.isSymbolicLink()) out.push(`${rel} link ${await fsp.readlink(p)}`);
    else {
      const sha = createHash('sha256')
        .update(await fsp.readFile(p))
        .digest('hex')
        .slice(0, 16);
      out.push(`${rel} file ${(st.mode & 0o7777).toString(8)} ${st.size} ${sha} ${st.uid}:${st.gid}`);
    }
  }
  return out;
}
