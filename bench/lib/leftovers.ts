/**
 * What a killed bench run (SIGINT mid-run, a crash) leaves for the next one, found by pid and
 * checked before anything is stopped: a process is only ours when its command line still names
 * the bench's own directory (a pid is a name the kernel may have given to another process since).
 */
import { promises as fs } from 'node:fs';

/** The command line of `pid` (arguments joined by spaces), or undefined when it is gone. */
async function cmdline(pid: number): Promise<string | undefined> {
  const raw = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  return raw?.split('\0').join(' ');
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * SIGTERM each of `pids` whose command line contains `marker`, then wait (up to `waitMs`) until
 * they are gone; returns the pids it stopped. A process still there after the wait is an error:
 * the caller would otherwise run beside it (a server on a stale bundle, a daemon on the same root).
 */
export async function stopLeftovers(pids: number[], marker: string, waitMs = 15_000): Promise<number[]> {
  const ours: number[] = [];
  for (const pid of pids) {
    if (!(pid > 0) || !(await cmdline(pid))?.includes(marker)) continue;
    try {
      process.kill(pid, 'SIGTERM');
      ours.push(pid);
    } catch {
      /* exited meanwhile */
    }
  }
  const until = Date.now() + waitMs;
  while (ours.some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  const left = ours.filter(alive);
  if (left.length) throw new Error(`process ${left.join(', ')} (${marker}) did not exit within ${waitMs / 1000} s`);
  return ours;
}
