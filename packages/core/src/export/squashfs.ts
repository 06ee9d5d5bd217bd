/**
 * `--format squashfs`: the flattened rootfs as one squashfs image (what Singularity's SIF carries
 * and what Shifter's image gateway makes), through mksquashfs from squashfs-tools. Owners, modes
 * and xattrs are the image's (no -all-root: the tree is root's only where the image says so).
 * Deterministic: mksquashfs sorts each directory itself; the superblock time is SOURCE_DATE_EPOCH,
 * else the image's `created`, never now, and with SOURCE_DATE_EPOCH every inode time is clamped
 * to it as well, so the same image gives the same bytes.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { VlabError } from '@vlab/errors';
import type { Store, StoredImage } from '../store/store.ts';
import { withFlattened, writeAtomicPath } from './flatten.ts';
import type { RootfsOptions } from './rootfs.ts';

const execFileP = promisify(execFile);

/** The mksquashfs argv for `dir` → `file` (exported for the test that reads the options). */
export function mksquashfsArgs(dir: string, file: string, mkfsTime: number, allTime?: number): string[] {
  return [
    dir,
    file,
    '-noappend',
    '-no-progress',
    '-quiet',
    '-comp',
    'gzip',
    '-mkfs-time',
    String(mkfsTime),
    ...(allTime !== undefined ? ['-all-time', String(allTime)] : []),
  ];
}

export async function writeSquashfs(
  store: Store,
  img: StoredImage,
  dest: string,
  opts: RootfsOptions = {},
): Promise<void> {
  const created = img.config.created ? Math.floor(Date.parse(img.config.created) / 1000) : 0;
  const mkfsTime = opts.sourceDateEpoch ?? (Number.isFinite(created) && created > 0 ? created : 0);
  await withFlattened(
    store,
    img,
    (dir) =>
      writeAtomicPath(dest, async (tmp) => {
        // mksquashfs reads SOURCE_DATE_EPOCH itself and then refuses -mkfs-time: we pass times explicitly.
        const env = { ...process.env };
        delete env.SOURCE_DATE_EPOCH;
        try {
          await execFileP('mksquashfs', mksquashfsArgs(dir, tmp, mkfsTime, opts.sourceDateEpoch), {
            env,
            maxBuffer: 4 << 20,
          });
        } catch (e) {
          const err = e as NodeJS.ErrnoException & { stderr?: string };
          if (err.code === 'ENOENT')
            throw new VlabError(
              'E_UNSUPPORTED',
              '--format squashfs needs mksquashfs (Debian: apt-get install squashfs-tools)',
              { cause: e },
            );
          throw new VlabError('E_OUTPUT', `mksquashfs failed: ${(err.stderr ?? err.message).trim().slice(0, 2000)}`, {
            cause: e,
          });
        }
      }),
    opts,
  );
}
