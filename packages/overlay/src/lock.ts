import fs from 'node:fs/promises';
import { closeSync, existsSync, openSync, rmSync, watch, writeFileSync } from 'node:fs';
import { VlabError } from '@vlab/errors';

/**
 * A cross-process lock file (O_EXCL create). The file holds the owner's pid so a lock left by a
 * killed process is recognised as stale and taken over instead of blocking forever.
 */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const started = Date.now();
  let delay = 1;
  for (;;) {
    // Taken and released with synchronous calls: µs each, where a thread-pool trip under load is
    // not (every snapshot prepare and commit takes this lock).
    try {
      const fd = openSync(lockPath, 'wx');
      try {
        writeFileSync(fd, String(process.pid));
      } catch (e) {
        // e.g. ENOSPC: an empty lock file left here would stall everyone for 10 s
        closeSync(fd);
        rmSync(lockPath, { force: true });
        throw e;
      }
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (await isStale(lockPath)) {
        await fs.rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() - started > timeoutMs) {
        throw new VlabError('E_LOCK_TIMEOUT', `timed out waiting for lock ${lockPath}`);
      }
      await released(lockPath, delay);
      // Woken by the release itself (an inotify watch on the file): the store's metadata lock is
      // held for ms at a time, by every step of every build, and a poll sleeps past the release
      // (bench/README.md, "parallel4: volatile temporaries"). The polls are only the fallback (a
      // stale owner, a filesystem without inotify): short for a second, then as for a long holder (gc).
      delay = Date.now() - started < 1000 ? Math.min(delay * 2, 16) : 100;
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockPath, { force: true });
  }
}

/** Resolves once `lockPath` is removed or changed, or after `ms`: whichever is first. */
export function released(lockPath: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    let w: ReturnType<typeof watch> | undefined;
    const done = () => {
      clearTimeout(t);
      w?.close();
      resolve();
    };
    const t = setTimeout(done, ms);
    try {
      w = watch(lockPath, { persistent: false }, done);
      w.on('error', done);
    } catch {
      return done(); // gone already (ENOENT), or no watch here: try again now
    }
    if (!existsSync(lockPath)) done(); // released before the watch was set: no event will come
  });
}

async function isStale(lockPath: string): Promise<boolean> {
  const pid = Number(await fs.readFile(lockPath, 'utf8').catch(() => ''));
  if (!pid) {
    // being written right now — or its owner died between create and write
    const st = await fs.stat(lockPath).catch(() => undefined);
    return !!st && Date.now() - st.mtimeMs > 10_000;
  }
  return !pidAlive(pid);
}

/** Whether `pid` names a live process (EPERM: alive, someone else's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
