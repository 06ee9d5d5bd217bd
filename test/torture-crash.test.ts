/**
 * Crash torture: SIGKILL a multi-step CLI build at seeded random moments — during the COPY of many
 * files, during a RUN, in the layer commit after a RUN (unmount, diff, blob, snapshot) and in the
 * image/index write after the last step — TORTURE_KILLS times (default 50; TORTURE_SEED replays).
 *
 * What is asserted after each kill:
 * 1. fsck (no repair) of the store as the kill left it finds only a dead build's leftovers
 *    (temp files, lease, lock, temp snapshot, mount, cgroup): no corrupt or missing blob, no broken
 *    snapshot chain, no cache record pointing at nothing;
 * 2. the next build (same inputs, through the API) succeeds, and every step the killed build had finished (its
 *    step-done events) is a cache hit in it;
 * 3. after that build's startup recovery, fsck (no repair) is clean: exit 0, nothing listed.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fsck, openEngine, prune, type FsckKind } from '@vlab/image';
import { buildWithEvents, freshStore, makeContext, removeStore } from './helpers.ts';
import { bundledCli, seededRandom, sleep, startCli } from './torture-helpers.ts';

const KILLS = Number(process.env.TORTURE_KILLS ?? 50);
const SEED = Number(process.env.TORTURE_SEED ?? 20240610);
const FILES = 150;
const BIG = 3 << 20;
/** What the CLI spends before its first step (node + tsx start-up), added to the 'anytime' window. */
const CLI_START_MS = 400;

const DOCKERFILE = `FROM busybox
ARG SEED
COPY many/ /many/
RUN cat /many/* | md5sum > /m && echo $SEED >> /m
COPY big.bin /big.bin
RUN sha256sum /big.bin > /sum
RUN echo $SEED > /s && ls /many | wc -l >> /s
`;

/** What a dead build may leave, and the next build removes (an unnamed snapshot dir: a create or remove cut between its dir and metadata steps, which the snapshot store open removes). */
const RECOVERABLE: FsckKind[] = [
  'temp-orphan',
  'lease-stale',
  'lock-stale',
  'mount-orphan',
  'cgroup-orphan',
  'snapshot-stale',
  'snapshot-orphan-dir',
];

type Target = 'copy' | 'run' | 'commit' | 'index' | 'anytime';
const TARGETS: Target[] = ['copy', 'run', 'commit', 'index', 'anytime'];

let root: string;
let ctx: string;
let cli: Awaited<ReturnType<typeof bundledCli>>;
beforeAll(async () => {
  cli = await bundledCli();
  root = await freshStore();
  const files: Record<string, string> = { Dockerfile: DOCKERFILE };
  for (let i = 0; i < FILES; i++) files[`many/f${i}.txt`] = `file ${i}\n`.repeat(20);
  ctx = await makeContext(files);
  await fsp.writeFile(path.join(ctx, 'big.bin'), Buffer.alloc(BIG, 7));
});
afterAll(async () => {
  await cli.remove();
  await removeStore(root);
  await fsp.rm(ctx, { recursive: true, force: true });
});

/** New inputs each round, so every step runs again (one file of the many, the head of the big one). */
async function mutate(round: number): Promise<void> {
  await fsp.writeFile(path.join(ctx, 'many', `f${round % FILES}.txt`), `round ${round}\n`);
  const fh = await fsp.open(path.join(ctx, 'big.bin'), 'r+');
  await fh.write(Buffer.from(`round ${round}`.padEnd(16)), 0, 16, 0);
  await fh.close();
}

interface Line {
  event?: { type: string; id?: string; name?: string; cached?: boolean };
  debug?: string;
}

function parse(line: string): Line {
  if (line.startsWith('{')) {
    try {
      return { event: JSON.parse(line) as Line['event'] };
    } catch {
      return {};
    }
  }
  const m = /^VLAB \d+: (\S+)/.exec(line);
  return m ? { debug: m[1] } : {};
}

/** Where the build was at its last output line: what the kill interrupted. */
function phaseOf(lines: Line[]): string {
  let phase = 'start';
  let layerSteps = 0;
  for (const l of lines) {
    if (l.event?.type === 'step-start') phase = /\] (COPY|RUN)/.exec(l.event.name ?? '')?.[1]?.toLowerCase() ?? 'meta';
    if (l.debug === 'layer.work') phase = 'layer-commit';
    if (l.event?.type === 'step-done' && l.event.cached === false && ++layerSteps === 5) phase = 'image-write';
  }
  return phase;
}

describe('torture: SIGKILL a build at random moments', () => {
  it(`${KILLS} kills: fsck finds only recoverable leftovers, the next build reuses what was committed, then fsck is clean`, async () => {
    const rand = seededRandom(SEED);
    const phases: Record<string, number> = {};
    const leftovers: Record<string, number> = {};
    let kills = 0;
    let reused = 0;
    let finishedFirst = 0;
    const time = { killed: 0, next: 0, fsck: 0 };
    let fullBuildMs = 1500; // grows to the longest next build seen: 'anytime' kills spread over it
    const args = (round: number) => [
      'build',
      '--progress=json',
      '--build-arg',
      `SEED=${round}`,
      '-t',
      'crash:latest',
      ctx,
    ];
    for (let round = 0; kills < KILLS && round < KILLS * 2; round++) {
      await mutate(round);
      const target = TARGETS[round % TARGETS.length]!;
      const t0 = Date.now();
      const run = startCli(root, args(round), { NODE_DEBUG: 'vlab' }, cli.cli);
      const lines: Line[] = [];
      let buf = '';
      let fire: () => void = () => undefined;
      const fired = new Promise<void>((r) => (fire = r));
      const trigger = (l: Line): boolean => {
        const e = l.event;
        if (target === 'copy') return e?.type === 'step-start' && /\] COPY many/.test(e.name ?? '');
        if (target === 'run') return e?.type === 'step-start' && /\] RUN/.test(e.name ?? '');
        if (target === 'commit') return l.debug === 'layer.work';
        if (target === 'index')
          return (
            e?.type === 'step-done' &&
            e.cached === false &&
            lines.filter((x) => x.event?.type === 'step-done' && x.event.cached === false).length === 5
          );
        return false;
      };
      run.child.stderr!.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const l = parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          lines.push(l);
          if (trigger(l)) fire();
        }
      });
      if (target === 'anytime') fire();
      const maxDelay = { copy: 150, run: 250, commit: 40, index: 10, anytime: fullBuildMs }[target];
      const delay = Math.floor(rand() * maxDelay);
      await Promise.race([fired.then(() => sleep(delay)), run.done]);
      run.child.kill('SIGKILL');
      const end = await run.done;
      time.killed += Date.now() - t0;
      if (end.signal !== 'SIGKILL') {
        finishedFirst++;
        expect(end.code, end.stderr).toBe(0);
        continue;
      }
      kills++;
      const phase = phaseOf(lines);
      phases[phase] = (phases[phase] ?? 0) + 1;
      const committed = lines
        .filter((l) => l.event?.type === 'step-done' && l.event.cached === false)
        .map((l) => l.event!.id!);

      let t = Date.now();
      const after = await fsck(root);
      time.fsck += Date.now() - t;
      for (const p of after.problems) leftovers[p.kind] = (leftovers[p.kind] ?? 0) + 1;
      const unexpected = after.problems.filter((p) => !RECOVERABLE.includes(p.kind));
      expect(unexpected, `round ${round} (seed ${SEED}, ${target} +${delay}ms)`).toEqual([]);

      // the next build (in this process: no CLI start-up to pay 50 times) runs the same recovery
      const started = Date.now();
      const next = await buildWithEvents({
        context: ctx,
        root,
        buildArgs: { SEED: String(round) },
        tags: ['crash:latest'],
      });
      fullBuildMs = Math.max(fullBuildMs, Date.now() - started + CLI_START_MS);
      const cached = next.events.filter((e) => e.type === 'step-cached').map((e) => (e as { id: string }).id);
      expect(cached, `round ${round}: steps done before the kill are cache hits`).toEqual(
        expect.arrayContaining(committed),
      );
      reused += committed.length;

      time.next += Date.now() - started;
      t = Date.now();
      const clean = await fsck(root);
      time.fsck += Date.now() - t;
      expect(clean.problems, `round ${round} (seed ${SEED}, ${target} +${delay}ms): after the next build`).toEqual([]);
      if (kills % 10 === 0) {
        // keep the store small: what the tag reaches stays
        const e = await openEngine(root);
        await prune(e.store, e.cache, e.snapshots, { all: true });
        await e.store.lease.release();
      }
    }
    console.log(
      `crash: ${kills} kills (seed ${SEED}), by phase ${JSON.stringify(phases)}; fsck right after a kill listed ${JSON.stringify(leftovers)}; ${reused} finished steps reused by the next builds; ${finishedFirst} builds finished before their kill; ms spent ${JSON.stringify(time)}`,
    );
    expect(kills).toBe(KILLS);
  }, 900_000);
});
