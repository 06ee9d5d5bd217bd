/**
 * Make a snapshot's own files durable before its commit names it. A RUN step's upper is mounted
 * `volatile` and an unpack writes without fsyncs, and a named snapshot is a lower of every later
 * step, so after a power loss a half-written one would be built on.
 *
 * A step that wrote a few files (the usual RUN) fsyncs those and their dirs: it waits for its
 * own bytes only, where a syncfs also waits for whatever else is dirty on the filesystem (a
 * `cp` next door, a context just written). Past FSYNC_MAX entries one syncfs is cheaper than a
 * journal commit per file.
 */
import { closeSync, fsync, openSync, readdirSync, constants } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { syncFilesystem } from './sys.ts';

const fsyncAsync = promisify(fsync);
const FSYNC_MAX = 64;

/** Regular files and dirs under `dir` (itself included), or undefined past FSYNC_MAX entries. */
function smallTree(dir: string): { files: string[]; dirs: string[] } | undefined {
  const files: string[] = [];
  const dirs: string[] = [dir];
  let seen = 0;
  for (let i = 0; i < dirs.length; i++) {
    for (const e of readdirSync(dirs[i]!, { withFileTypes: true })) {
      if (++seen > FSYNC_MAX) return undefined;
      const p = path.join(dirs[i]!, e.name);
      if (e.isDirectory()) dirs.push(p);
      else if (e.isFile()) files.push(p);
      // symlinks, whiteouts, fifos: metadata only, made durable by their dir's fsync
    }
  }
  return { files, dirs };
}

async function fsyncPath(p: string, flags: number): Promise<void> {
  const fd = openSync(p, flags | constants.O_NOFOLLOW); // Node opens close-on-exec
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function writeBack(dir: string): Promise<void> {
  const tree = smallTree(dir);
  if (!tree) return syncFilesystem(dir);
  // the files' data, then the dirs whose entries name them
  await Promise.all(tree.files.map((f) => fsyncPath(f, constants.O_RDONLY)));
  await Promise.all(tree.dirs.map((d) => fsyncPath(d, constants.O_RDONLY | constants.O_DIRECTORY)));
}
