/**
 * Volumes: `<root>/volumes/<name>/` holding `_data` (what containers see) and `meta.json`. A
 * volume is made by an atomic mkdir (two creators of one name get the same volume, as docker's
 * `volume create` is idempotent). Anonymous volumes (image VOLUME, `-v /path`) are named by 64 hex
 * digits and marked so `rm -v` and `volume prune` know them.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { VlabError } from '@vlab/errors';
import { resolveInRoot } from '../fsutil/in-root.ts';
import { writeAtomic } from '../store/store.ts';
import { newId } from './names.ts';

export interface Volume {
  name: string;
  driver: 'local';
  mountpoint: string;
  createdAt: string;
  anonymous: boolean;
  labels: Record<string, string>;
  /** The image's content was copied in once (docker fills an empty volume on first use). */
  populated?: boolean;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function checkVolumeName(name: string): string {
  if (!NAME_RE.test(name) || name.length > 255)
    throw new VlabError(
      'E_VOLUME_PATH',
      `"${name}" includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed. If you intended to pass a host directory, use an absolute path`,
    );
  return name;
}

export class VolumeStore {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = path.join(storeRoot, 'volumes');
  }

  private meta(name: string): string {
    return path.join(this.dir, name, 'meta.json');
  }

  /** Creates the volume, or returns it when it exists (docker's `volume create` is idempotent). */
  async create(name?: string, opts: { labels?: Record<string, string>; anonymous?: boolean } = {}): Promise<Volume> {
    const anonymous = name === undefined || !!opts.anonymous;
    const n = name === undefined ? newId() : checkVolumeName(name);
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const vdir = path.join(this.dir, n);
    try {
      await fsp.mkdir(vdir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      return this.waitFor(n);
    }
    await fsp.mkdir(path.join(vdir, '_data'), { mode: 0o755 });
    const v: Volume = {
      name: n,
      driver: 'local',
      mountpoint: path.join(vdir, '_data'),
      createdAt: new Date().toISOString(),
      anonymous,
      labels: opts.labels ?? {},
    };
    await writeAtomic(this.meta(n), JSON.stringify(v, null, 2));
    return v;
  }

  /** A volume another process is creating right now: its meta.json comes a moment later. */
  private async waitFor(name: string): Promise<Volume> {
    for (let i = 0; i < 100; i++) {
      const v = await this.get(name).catch(() => undefined);
      if (v) return v;
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.get(name);
  }

  async get(name: string): Promise<Volume> {
    const text = await fsp.readFile(this.meta(checkVolumeName(name)), 'utf8').catch(() => undefined);
    if (!text) throw new VlabError('E_VOLUME_NOT_FOUND', `no such volume: ${name}`);
    return JSON.parse(text) as Volume;
  }

  async list(): Promise<Volume[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    const out: Volume[] = [];
    for (const n of names.sort()) {
      const v = await this.get(n).catch(() => undefined);
      if (v) out.push(v);
    }
    return out;
  }

  /** Removes a volume; the caller checked that no container uses it. */
  async remove(name: string): Promise<void> {
    await this.get(name);
    const gone = path.join(this.dir, `.rm-${process.pid}-${name}`);
    await fsp.rename(path.join(this.dir, name), gone);
    await fsp.rm(gone, { recursive: true, force: true });
  }

  /**
   * Docker's copy-up: a volume that is still empty gets what the image has at `target` (owners,
   * modes, links as they are: `cp -a` of the in-root resolved directory, never a host path).
   */
  async populate(name: string, rootfs: string, target: string): Promise<void> {
    const v = await this.get(name);
    if (v.populated) return;
    const entries = await fsp.readdir(v.mountpoint).catch(() => [] as string[]);
    if (!entries.length) {
      const src = await resolveInRoot(rootfs, target);
      const st = await fsp.lstat(src).catch(() => undefined);
      if (st?.isDirectory()) {
        await promisify(execFile)('cp', ['-a', '--', `${src}/.`, `${v.mountpoint}/`]);
        await fsp.chmod(v.mountpoint, st.mode & 0o7777);
        await fsp.chown(v.mountpoint, st.uid, st.gid);
      }
    }
    await writeAtomic(this.meta(name), JSON.stringify({ ...v, populated: true }, null, 2));
  }
}
