/**
 * Testing hook: `VLAB_TESTING_STOP_AT=POINT` stops this process (SIGSTOP) at POINT once it has
 * said so on stderr (synchronously: a pipe write of Node's would still be queued), so that a test
 * can SIGKILL it exactly there instead of racing a sleep. Free when the variable is unset.
 * The message comes before the stop: a test SIGCONTs only once /proc/PID/stat says stopped (T),
 * else its SIGCONT may land in between, be lost, and leave this process stopped for good.
 */
import { writeSync } from 'node:fs';

export function stopAt(point: string): void {
  if (process.env.VLAB_TESTING_STOP_AT !== point) return;
  writeSync(2, `vbuild testing: stopped at ${point}\n`);
  process.kill(process.pid, 'SIGSTOP');
}
