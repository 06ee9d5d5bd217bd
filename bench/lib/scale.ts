/**
 * Peak RSS of our builder on copy-big as the file grows (BENCH_SCALE_GIB=1,2,4): cold builds in a
 * fresh store each, the file generated under bench/.data/ctx/scale and removed afterwards. The
 * builder is the CLI (BENCH_SCALE_PEER=vlab for the API worker).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { genBig } from '../cases.ts';
import { median, settleBeforeCold } from './measure.ts';
import { bytes, render, secs } from './table.ts';
import { VlabApi } from '../peers/vlab.ts';
import { VlabCli } from '../peers/vlab-cli.ts';
import type { BenchEnv } from '../peers/types.ts';

export interface ScaleResult {
  peer: string;
  table: string;
  points: { gib: number; rss: number }[];
}

export async function scaleRows(env: BenchEnv, list: string, runs: number): Promise<ScaleResult> {
  const rows: string[][] = [];
  const points: ScaleResult['points'] = [];
  const dir = path.join(env.dataDir, 'ctx', 'scale');
  const peer = process.env.BENCH_SCALE_PEER === 'vlab' ? new VlabApi() : new VlabCli(true);
  await peer.setup(env);
  try {
    for (const gib of list.split(',').map(Number)) {
      await fs.rm(dir, { recursive: true, force: true });
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, 'Dockerfile'), 'FROM busybox:latest\nCOPY big.bin /big.bin\n');
      env.log(`scale: generating ${gib} GiB`);
      await genBig(path.join(dir, 'big.bin'), Math.round(gib * 2 ** 30));
      const walls: number[] = [];
      const rss: number[] = [];
      for (let i = 0; i < runs; i++) {
        await peer.reset();
        // The same page-cache start as every other cold row (read the file, or drop the cache).
        await settleBeforeCold(dir);
        const r = await peer.build(dir, 'bench-scale:latest');
        if (!r.ok) throw new Error(`scale ${gib} GiB: ${r.error}`);
        walls.push(r.wall);
        rss.push(r.rss ?? 0);
      }
      points.push({ gib, rss: Math.max(...rss) });
      rows.push([
        `${gib} GiB`,
        secs(median(walls)),
        bytes(Math.max(...rss)),
        `${((gib * 1024) / median(walls)).toFixed(0)} MiB/s`,
      ]);
    }
  } finally {
    await peer.teardown();
    await fs.rm(dir, { recursive: true, force: true });
  }
  return { peer: peer.name, table: render(['file', 'cold s', 'peak RSS', 'throughput'], rows), points };
}
