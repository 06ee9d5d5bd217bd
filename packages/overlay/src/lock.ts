import fs from 'node:fs/promises';
import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';
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
      await new Promise((r) => setTimeout(r, delay));
      // The store's metadata lock is held for ms at a time (two fsyncs), by every step of every
      // build: 4 builds at once waited 0.7 s a round on it in all, 0.3 s with these short polls
      // (bench/README.md, "parallel4 and the go-ahead handshake"). Polls stay short for a second;
      // a lock held longer (gc) is polled as before.
      delay = Date.now() - started < 1000 ? Math.min(delay * 2, 4) : 100;
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockPath, { force: true });
  }
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
