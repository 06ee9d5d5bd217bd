/** The cross-process lock file (lock.ts): exclusion across processes, stale owners, wake-up on release. */
import { promises as fs, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { released, withFileLock } from './lock.ts';
import { run } from './sys.ts';

const script = fileURLToPath(new URL('./testing/lock-script.ts', import.meta.url));
let dir = '';
afterEach(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('withFileLock', () => {
  it('4 processes, 25 holds each: one holder at a time, no lost update', { timeout: 60_000 }, async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-lock-'));
    const [lock, counter, log] = ['l', 'counter', 'log'].map((f) => path.join(dir, f)) as [string, string, string];
    writeFileSync(counter, '0');
    const rs = await Promise.all(
      [1, 2, 3, 4].map(() => run(process.execPath, ['--import', 'tsx', script, lock, counter, log, '25'])),
    );
    for (const r of rs) expect(r.stderr).toBe('');
    expect(await fs.readFile(counter, 'utf8')).toBe('100');
    const lines = (await fs.readFile(log, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(200);
    for (let i = 0; i < lines.length; i += 2) {
      // every hold ends before the next one starts, by the same process
      expect(lines[i]![0], `line ${i}`).toBe('+');
      expect(lines[i + 1], `line ${i + 1}`).toBe(`-${lines[i]!.slice(1)}`);
    }
    await expect(fs.stat(lock)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it("takes over a dead owner's lock at once", async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-lock-'));
    const lock = path.join(dir, 'l');
    writeFileSync(lock, '999999999'); // no such pid
    const t0 = Date.now();
    expect(await withFileLock(lock, async () => 'held', 5000)).toBe('held');
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('a waiter is woken by the release, not by its next poll', { timeout: 15_000 }, async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-lock-'));
    const lock = path.join(dir, 'l');
    writeFileSync(lock, String(process.pid));
    // polls 60 s apart: only the release itself can end this wait within the test's time
    const t0 = Date.now();
    const woke = released(lock, 60_000);
    setTimeout(() => void fs.rm(lock), 50);
    await woke;
    expect(Date.now() - t0).toBeLessThan(10_000);
    // gone already: no wait at all
    const t1 = Date.now();
    await released(lock, 60_000);
    expect(Date.now() - t1).toBeLessThan(10_000);
  });
});

describe("a dead owner's lock", () => {
  it('found by 4 waiters at once is taken over by one of them at a time, 50 rounds', { timeout: 30_000 }, async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-lock-'));
    const lock = path.join(dir, 'l');
    let holders = 0;
    let most = 0;
    for (let round = 0; round < 50; round++) {
      writeFileSync(lock, '999999999'); // no such pid
      await Promise.all(
        [1, 2, 3, 4].map(() =>
          withFileLock(lock, async () => {
            most = Math.max(most, ++holders);
            await new Promise((r) => setTimeout(r, 1));
            holders--;
          }),
        ),
      );
    }
    expect(most, 'holders at once').toBe(1);
    await expect(fs.stat(`${lock}.takeover`)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
