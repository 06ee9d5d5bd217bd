import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
} from 'node:fs';
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
      if (isStale(lockPath) && takeOverStale(lockPath)) continue;
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
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return done(); // gone already: try again now
      // no watch to be had (ENOSPC/EMFILE: the inotify limits): the timer is the wake-up, never a spin
    }
    if (!existsSync(lockPath)) done(); // released before the watch was set: no event will come
  });
}

/** Whether the lock file's owner is gone (pid and age read from one fd: the same file). */
function isStale(lockPath: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, 'r');
  } catch {
    return false; // released meanwhile: the next create tells
  }
  try {
    const pid = Number(readFileSync(fd, 'utf8'));
    // no pid: being written right now, or its owner died between create and write
    return pid ? !pidAlive(pid) : Date.now() - fstatSync(fd).mtimeMs > STALE_EMPTY_MS;
  } finally {
    closeSync(fd);
  }
}

const STALE_EMPTY_MS = 10_000;
/** A takeover guard older than this was left by a taker killed inside its few µs. */
const STALE_GUARD_MS = 5_000;

/**
 * Removes a dead owner's lock file. Several waiters can find the same dead owner, and one that
 * removed "the lock" by name after another had already taken it over would remove the new
 * holder's lock (two holders: 80 of 200 rounds with 4 waiters). So the removal is done under an
 * O_EXCL guard file, and under it the lock is checked again to still be a dead owner's: nothing
 * else replaces a lock file that exists (creates fail, its owner is dead, takers need the guard).
 * All synchronous: µs, and no other waiter of this process interleaves. False: the guard is another's.
 */
function takeOverStale(lockPath: string): boolean {
  const guard = `${lockPath}.takeover`;
  let fd: number;
  try {
    fd = openSync(guard, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const st = (() => {
      try {
        return statSync(guard);
      } catch {
        return undefined;
      }
    })();
    if (st && Date.now() - st.mtimeMs > STALE_GUARD_MS) rmSync(guard, { force: true });
    return false; // another waiter is taking it over: wait as for a live holder
  }
  try {
    if (isStale(lockPath)) rmSync(lockPath, { force: true });
    return true;
  } finally {
    closeSync(fd);
    rmSync(guard, { force: true });
  }
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
