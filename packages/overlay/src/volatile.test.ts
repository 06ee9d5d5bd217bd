/**
 * Volatile snapshot records (VOLATILE_LABEL, a build's temporaries): kept in metadata.volatile.json
 * without fsyncs, so a step's prepare writes nothing durable under the store's lock; what a commit
 * names is durable as before; a reboot, an unreadable document, a commit or a process killed
 * half-way all leave a consistent store.
 */
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { checkSnapshots, createSnapshotter, VOLATILE_LABEL } from './index.ts';
import { run } from './sys.ts';

const V = { [VOLATILE_LABEL]: 'true' };
const script = fileURLToPath(new URL('./testing/concurrent-script.ts', import.meta.url));
const roots: string[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) await fs.rm(r, { recursive: true, force: true });
});
async function newRoot(): Promise<string> {
  const r = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-volatile-'));
  roots.push(r);
  return r;
}
const json = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as { boot?: string; snapshots: Record<string, never> };
const ino = (f: string) => statSync(f).ino;

describe('volatile snapshot records', () => {
  it('a volatile prepare leaves metadata.json alone; its commit is named there, without the label', async () => {
    const root = await newRoot();
    const s = await createSnapshotter(root, { driver: 'native' });
    await s.prepare('base', undefined);
    await s.commit('B', 'base');
    const before = ino(path.join(root, 'metadata.json'));
    await s.prepare('tmp', 'B', { ...V, other: 'x' });
    expect(ino(path.join(root, 'metadata.json'))).toBe(before); // not rewritten
    expect(Object.keys(json(path.join(root, 'metadata.volatile.json')).snapshots)).toEqual(['tmp']);
    // another process's view (a fresh snapshotter) sees it, and cannot take its key
    const other = await createSnapshotter(root, { driver: 'native' });
    expect((await other.stat('tmp'))?.kind).toBe('active');
    await expect(other.prepare('tmp', 'B')).rejects.toMatchObject({ code: 'E_SNAPSHOT_EXISTS' });
    await s.commit('T', 'tmp');
    expect(Object.keys(json(path.join(root, 'metadata.json')).snapshots).sort()).toEqual(['B', 'T']);
    expect(json(path.join(root, 'metadata.volatile.json')).snapshots).toEqual({});
    expect((await other.stat('T'))?.labels).toEqual({ other: 'x' });
    await other.prepare('tmp2', 'T', V);
    await other.remove('tmp2');
    expect((await s.walk()).map((i) => i.key)).toEqual(['B', 'T']);
    expect((await checkSnapshots(root)).problems).toEqual([]);
  });

  it('records of another boot, or an unreadable document, count as empty: open removes their dirs', async () => {
    for (const spoil of ['boot', 'garbage'] as const) {
      const root = await newRoot();
      const s = await createSnapshotter(root, { driver: 'native' });
      await s.prepare('t', undefined, V); // id v1, kept once committed
      await fs.writeFile(path.join((await s.writableDir('t')).dir, 'f'), 'T');
      await s.commit('T', 't');
      await s.prepare('tmp', 'T', V);
      const vfile = path.join(root, 'metadata.volatile.json');
      const doc = json(vfile);
      // a reboot since, or a crash while the document was only in the page cache
      await fs.writeFile(vfile, spoil === 'boot' ? JSON.stringify({ ...doc, boot: 'another-boot' }) : '\0\0\0');
      const again = await createSnapshotter(root, { driver: 'native' });
      expect((await again.walk()).map((i) => i.key)).toEqual(['T']);
      expect(await fs.readdir(path.join(root, 'snapshots'))).toHaveLength(1);
      // the volatile ids start again, and skip the one T kept: its dir is not reused
      await again.prepare('n1', 'T', V);
      await again.commit('N1', 'n1');
      expect(await fs.readFile(path.join((await again.mounts('T'))[0]!.source, 'f'), 'utf8')).toBe('T');
      expect(await fs.readdir(path.join(root, 'snapshots'))).toHaveLength(2);
      expect((await checkSnapshots(root)).problems).toEqual([]);
    }
  });

  it('a commit killed between its durable and its volatile write: the committed record wins', async () => {
    const root = await newRoot();
    const s = await createSnapshotter(root, { driver: 'native' });
    await s.prepare('step-1-aa', undefined, V);
    await fs.writeFile(path.join((await s.writableDir('step-1-aa')).dir, 'f'), 'data');
    const vfile = path.join(root, 'metadata.volatile.json');
    const stale = readFileSync(vfile, 'utf8');
    await s.commit('C', 'step-1-aa');
    await fs.writeFile(vfile, stale); // as if the volatile write never happened
    const again = await createSnapshotter(root, { driver: 'native' });
    expect((await again.walk()).map((i) => [i.key, i.kind])).toEqual([['C', 'committed']]);
    // what a later build does with a dead owner's temporary: nothing reaches C's directory
    await again.remove('step-1-aa');
    expect(await fs.readFile(path.join((await again.mounts('C'))[0]!.source, 'f'), 'utf8')).toBe('data');
    await again.prepare('x', 'C', V);
    expect(Object.keys(json(vfile).snapshots)).toEqual(['x']); // the stale record went with that write
  });

  it(
    'processes with volatile and durable temporaries share a root without losing updates',
    { timeout: 60_000 },
    async () => {
      const root = await newRoot();
      const rs = await Promise.all(
        [
          ['p', 'durable'],
          ['q', 'volatile'],
          ['r', 'volatile'],
        ].map(([tag, mode]) => run(process.execPath, ['--import', 'tsx', script, root, tag!, mode!, '10'])),
      );
      for (const r of rs) expect(r.stderr).toBe('');
      const s = await createSnapshotter(root, { driver: 'native' });
      const all = await s.walk();
      expect(all.length).toBe(30);
      expect(all.every((i) => i.kind === 'committed' && !(VOLATILE_LABEL in i.labels))).toBe(true);
      const m = await s.mounts('r-c9');
      expect((await fs.readdir(m[0]!.source)).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `r-${i}`).sort());
      expect(json(path.join(root, 'metadata.volatile.json')).snapshots).toEqual({});
      expect((await checkSnapshots(root)).problems).toEqual([]);
    },
  );

  it(
    'processes SIGKILLed mid-commit leave a consistent store that keeps every name they saw committed',
    { timeout: 60_000 },
    async () => {
      const root = await newRoot();
      const committed: string[] = [];
      // two writers at once, killed at spread-out points of their loops (after start-up)
      for (const [round, delay] of [30, 90, 170].entries()) {
        const kids = ['k', 'm'].map((t) => {
          const c = spawn(process.execPath, ['--import', 'tsx', script, root, `${t}${round}`, 'volatile', '400'], {
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let out = '';
          const first = new Promise<void>((resolve) => c.stdout.on('data', (d: Buffer) => ((out += d), resolve())));
          const gone = new Promise<void>((resolve) => c.on('close', () => resolve()));
          return { c, first, gone, lines: () => out.split('\n') };
        });
        await Promise.all(kids.map((k) => k.first));
        await new Promise((r) => setTimeout(r, delay + 17 * round));
        for (const k of kids) k.c.kill('SIGKILL');
        for (const k of kids) {
          await k.gone;
          // a name printed whole was committed before the kill
          committed.push(...k.lines().slice(0, -1));
        }
      }
      expect(committed.length).toBeGreaterThan(6);
      const s = await createSnapshotter(root, { driver: 'native' }); // open: removes what they left unnamed
      for (const name of committed) expect((await s.stat(name))?.kind, name).toBe('committed');
      expect((await checkSnapshots(root)).problems).toEqual([]);
      // every record's dir is there, and every dir belongs to a record (checkSnapshots), and the
      // chains hold: the last committed of each writer mounts with all its files
      const last = committed.filter((n) => n.startsWith('k0-')).at(-1)!;
      const n = Number(last.slice('k0-c'.length)) + 1;
      expect((await fs.readdir((await s.mounts(last))[0]!.source)).length).toBe(n);
    },
  );

  it('a volatile commit is named in metadata.volatile.json only, until settle() makes it durable', async () => {
    const root = await newRoot();
    const s = await createSnapshotter(root, { driver: 'native' });
    await s.prepare('base', undefined);
    await s.commit('B', 'base');
    const dfile = path.join(root, 'metadata.json');
    const vfile = path.join(root, 'metadata.volatile.json');
    const before = ino(dfile);
    let parent = 'B';
    for (const n of ['1', '2', '3']) {
      await s.prepare(`step-${n}`, parent, V);
      await fs.writeFile(path.join((await s.writableDir(`step-${n}`)).dir, `f${n}`), n);
      await s.commit(`C${n}`, `step-${n}`, { ...V, other: 'x' });
      parent = `C${n}`;
    }
    expect(ino(dfile)).toBe(before); // no durable write for three steps
    expect(Object.keys(json(vfile).snapshots).sort()).toEqual(['C1', 'C2', 'C3']);
    // another process uses them as parents, as after a killed build (same boot)
    const other = await createSnapshotter(root, { driver: 'native' });
    expect((await other.stat('C3'))?.kind).toBe('committed');
    expect((await fs.readdir((await other.mounts('C3'))[0]!.source)).sort()).toEqual(['f1', 'f2', 'f3']);
    await s.settle();
    expect(Object.keys(json(dfile).snapshots).sort()).toEqual(['B', 'C1', 'C2', 'C3']);
    expect(json(vfile).snapshots).toEqual({});
    expect((await other.stat('C2'))?.labels).toEqual({ other: 'x' });
    await s.settle(); // nothing left: a no-op
    // and they outlive a reboot now
    await fs.writeFile(vfile, JSON.stringify({ ...json(vfile), boot: 'another-boot' }));
    const again = await createSnapshotter(root, { driver: 'native' });
    expect((await again.walk()).map((i) => i.key)).toEqual(['B', 'C1', 'C2', 'C3']);
    expect((await checkSnapshots(root)).problems).toEqual([]);
  });

  it('volatile commits not settled are gone after a reboot, leaving a consistent store', async () => {
    const root = await newRoot();
    const s = await createSnapshotter(root, { driver: 'native' });
    await s.prepare('base', undefined);
    await s.commit('B', 'base');
    await s.prepare('step-1', 'B', V);
    await s.commit('C1', 'step-1', V);
    await s.prepare('step-2', 'C1', V);
    await s.commit('C2', 'step-2', V);
    const vfile = path.join(root, 'metadata.volatile.json');
    await fs.writeFile(vfile, JSON.stringify({ ...json(vfile), boot: 'another-boot' }));
    const again = await createSnapshotter(root, { driver: 'native' });
    expect((await again.walk()).map((i) => i.key)).toEqual(['B']);
    expect(await fs.readdir(path.join(root, 'snapshots'))).toHaveLength(1);
    expect((await checkSnapshots(root)).problems).toEqual([]);
  });

  it('a durable record never stands on a volatile commit: a durable prepare or commit settles the chain', async () => {
    for (const how of ['prepare', 'commit'] as const) {
      const root = await newRoot();
      const s = await createSnapshotter(root, { driver: 'native' });
      await s.prepare('step-1', undefined, V);
      await s.commit('C1', 'step-1', V);
      await s.prepare('step-2', 'C1', V);
      await s.commit('C2', 'step-2', V);
      if (how === 'prepare')
        await s.prepare('container', 'C2'); // durable, on C2
      else {
        await s.prepare('step-3', 'C2', V);
        await s.commit('C3', 'step-3'); // a durable commit
      }
      const dfile = path.join(root, 'metadata.json');
      const durable = Object.keys(json(dfile).snapshots).sort();
      expect(durable).toEqual(how === 'prepare' ? ['C1', 'C2', 'container'] : ['C1', 'C2', 'C3']);
      const vfile = path.join(root, 'metadata.volatile.json');
      await fs.writeFile(vfile, JSON.stringify({ ...json(vfile), boot: 'another-boot' }));
      const again = await createSnapshotter(root, { driver: 'native' });
      expect((await again.walk()).map((i) => i.key).sort()).toEqual(durable);
      expect((await checkSnapshots(root)).problems).toEqual([]);
    }
  });

  it(
    'processes SIGKILLed among volatile commits and settles: the names they saw hold until a reboot, the settled ones after it',
    { timeout: 60_000 },
    async () => {
      const root = await newRoot();
      const committed: string[] = [];
      const settled: string[] = [];
      for (const [round, delay] of [40, 110, 190].entries()) {
        const kids = ['k', 'm'].map((t) => {
          const c = spawn(
            process.execPath,
            ['--import', 'tsx', script, root, `${t}${round}`, 'volatile-commit', '400'],
            { stdio: ['ignore', 'pipe', 'inherit'] },
          );
          let out = '';
          const first = new Promise<void>((resolve) => c.stdout.on('data', (d: Buffer) => ((out += d), resolve())));
          const gone = new Promise<void>((resolve) => c.on('close', () => resolve()));
          return { c, first, gone, lines: () => out.split('\n').slice(0, -1) };
        });
        await Promise.all(kids.map((k) => k.first));
        await new Promise((r) => setTimeout(r, delay + 17 * round));
        for (const k of kids) k.c.kill('SIGKILL');
        for (const k of kids) {
          await k.gone;
          for (const l of k.lines()) (l.startsWith('settled ') ? settled : committed).push(l.replace('settled ', ''));
        }
      }
      expect(committed.length).toBeGreaterThan(6);
      expect(settled.length).toBeGreaterThan(0);
      // same boot (the page cache holds what they wrote): every name they saw committed holds
      const s = await createSnapshotter(root, { driver: 'native' });
      for (const name of committed) expect((await s.stat(name))?.kind, name).toBe('committed');
      expect((await checkSnapshots(root)).problems).toEqual([]);
      const last = committed.filter((n) => n.startsWith('k0-')).at(-1)!;
      // native driver: a snapshot's dir holds its whole tree, one file per round
      expect((await fs.readdir((await s.mounts(last))[0]!.source)).length).toBe(Number(last.slice('k0-c'.length)) + 1);
      // after a reboot: every settled name (and its chain) holds, nothing else dangles
      const vfile = path.join(root, 'metadata.volatile.json');
      await fs.writeFile(vfile, JSON.stringify({ ...json(vfile), boot: 'another-boot' }));
      const again = await createSnapshotter(root, { driver: 'native' });
      for (const name of settled) expect((await again.stat(name))?.kind, name).toBe('committed');
      expect((await checkSnapshots(root)).problems).toEqual([]);
      const all = await again.walk();
      for (const i of all) if (i.parent) expect(all.some((p) => p.key === i.parent)).toBe(true);
    },
  );
});
