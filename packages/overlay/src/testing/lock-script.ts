/**
 * Run by lock.test.ts in several processes at once: `LOCK COUNTER LOG N`, N times under the lock:
 * read the counter, yield to the event loop, write it back one higher, with "+pid" / "-pid" lines
 * around each hold in LOG (appended), so overlapping holders show.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { withFileLock } from '../lock.ts';

const [lock, counter, log, n] = process.argv.slice(2) as [string, string, string, string];
for (let i = 0; i < Number(n); i++) {
  await withFileLock(lock, async () => {
    appendFileSync(log, `+${process.pid}\n`);
    const v = Number(readFileSync(counter, 'utf8'));
    await new Promise((r) => setTimeout(r, i % 3));
    writeFileSync(counter, String(v + 1));
    appendFileSync(log, `-${process.pid}\n`);
  });
}
