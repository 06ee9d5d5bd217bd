/**
 * The parallel4 case: k different builds (contexts p1…pk of the case dir) on one store, first one
 * after another, then all at once; each phase's outcome is the whole batch (wall time of all of
 * it, largest peak RSS, steps summed), so the table compares the two walls directly.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BuildOutcome, Peer } from '../peers/types.ts';

/** Four builds that share only the base: a COPY of their own file, then RUN steps of their own. */
export async function genParallel(dir: string, k: number, runs: number): Promise<void> {
  for (let p = 1; p <= k; p++) {
    const sub = path.join(dir, `p${p}`);
    await fs.mkdir(sub, { recursive: true });
    await fs.writeFile(path.join(sub, 'f.txt'), `build ${p}\n`);
    const steps = Array.from({ length: runs }, (_, i) => `RUN echo b${p}s${i} > /b${p}-${i}.txt`);
    await fs.writeFile(
      path.join(sub, 'Dockerfile'),
      ['FROM busybox:latest', 'COPY f.txt /f.txt', ...steps, ''].join('\n'),
    );
  }
}

const subTag = (tag: string, p: number) => tag.replace(/(:[^:/]*)?$/, (t) => `-p${p}${t || ':latest'}`);

function merge(all: BuildOutcome[], wall: number): BuildOutcome {
  const bad = all.find((o) => !o.ok);
  const sum = (f: (o: BuildOutcome) => number | undefined) =>
    all.every((o) => f(o) !== undefined) ? all.reduce((a, o) => a + f(o)!, 0) : undefined;
  const rss = all.map((o) => o.rss).filter((x): x is number => x !== undefined);
  return {
    ok: !bad,
    wall,
    rss: rss.length ? Math.max(...rss) : undefined,
    ran: sum((o) => o.ran),
    cached: sum((o) => o.cached),
    error: bad?.error,
  };
}

/** The k builds one after another (on the store as it is: the caller resets it first). */
export async function serialBuilds(peer: Peer, dir: string, k: number, tag: string): Promise<BuildOutcome> {
  const t0 = performance.now();
  const all: BuildOutcome[] = [];
  for (let p = 1; p <= k; p++) all.push(await peer.build(path.join(dir, `p${p}`), subTag(tag, p)));
  return merge(all, (performance.now() - t0) / 1000);
}

/** The k builds started at once. */
export async function parallelBuilds(peer: Peer, dir: string, k: number, tag: string): Promise<BuildOutcome> {
  const t0 = performance.now();
  const all = await Promise.all(
    Array.from({ length: k }, (_, i) => peer.build(path.join(dir, `p${i + 1}`), subTag(tag, i + 1))),
  );
  return merge(all, (performance.now() - t0) / 1000);
}
