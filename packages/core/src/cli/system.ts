/** `vbuild system df [-v] [--format table|json]`: docker system df's table (and -v's per-entry tables) over systemDf(). */
import { defaultStoreRoot, systemDf, type DfReport, type DfRow } from '../index.ts';
import { str } from './flags.ts';
import { group, type Command } from './images.ts';
import { FORMAT, outputFormat, printJson, table } from './output.ts';
import { ago, humanSize } from './tools.ts';

/** docker's RECLAIMABLE cell: the size and its share of SIZE (no share for the build cache). */
function reclaimable(r: DfRow): string {
  if (r.type === 'Build Cache' || !r.size) return humanSize(r.reclaimable);
  return `${humanSize(r.reclaimable)} (${Math.floor((r.reclaimable * 100) / r.size)}%)`;
}

function summary(report: DfReport): string {
  const rows = [['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE']];
  for (const r of report.rows)
    rows.push([r.type, String(r.total), String(r.active), humanSize(r.size), reclaimable(r)]);
  return table(rows, 10);
}

function verbose(report: DfReport): string {
  const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);
  const out: string[] = ['Images space usage:\n\n'];
  const img = [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE', 'SHARED SIZE', 'UNIQUE SIZE', 'CONTAINERS']];
  for (const i of report.images) {
    const at = i.ref.lastIndexOf(':');
    const [repo, tag] =
      i.ref === '<none>' || at < i.ref.lastIndexOf('/') ? [i.ref, '<none>'] : [i.ref.slice(0, at), i.ref.slice(at + 1)];
    img.push([
      repo,
      tag,
      short(i.imageId),
      ago(i.created),
      humanSize(i.size),
      humanSize(i.sharedSize),
      humanSize(i.uniqueSize),
      String(i.containers),
    ]);
  }
  out.push(table(img, 10));
  const u = report.unreferenced;
  if (u.blobs || u.snapshots)
    out.push(
      `\nUnreferenced: ${u.blobs} blobs, ${u.snapshots} snapshots, ${humanSize(u.size)} (vbuild prune removes them)\n`,
    );
  out.push('\nContainers space usage:\n\n');
  const ctr = [['CONTAINER ID', 'IMAGE', 'COMMAND', 'LOCAL VOLUMES', 'SIZE', 'CREATED', 'STATUS', 'NAMES']];
  for (const c of report.containers)
    ctr.push([
      short(c.id),
      c.image,
      c.command,
      String(c.localVolumes),
      humanSize(c.size),
      ago(c.created),
      c.status,
      c.name,
    ]);
  out.push(table(ctr, 10));
  out.push('\nLocal Volumes space usage:\n\n');
  const vol = [['VOLUME NAME', 'LINKS', 'SIZE']];
  for (const v of report.volumes) vol.push([v.name, String(v.links), humanSize(v.size)]);
  out.push(table(vol, 10));
  const cacheRow = report.rows.find((r) => r.type === 'Build Cache')!;
  out.push(`\nBuild cache usage: ${humanSize(cacheRow.size)}\n\n`);
  const cache = [['CACHE ID', 'CACHE TYPE', 'SIZE', 'CREATED', 'LAST USED', 'USAGE', 'SHARED']];
  for (const e of report.buildCache)
    cache.push([short(e.id), 'regular', humanSize(e.size), ago(e.created), ago(e.created), '0', String(e.shared)]);
  out.push(table(cache, 10));
  return out.join('');
}

export const SYSTEM_COMMANDS: Record<string, Command> = {
  df: {
    spec: {
      name: 'system df',
      usage: '[-v] [--format table|json]',
      summary: 'Show the disk usage of images, containers, volumes and the build cache, and what prune would free',
      flags: {
        verbose: { type: 'boolean', short: 'v', help: 'show each image, container, volume and cache record' },
        format: FORMAT,
      },
    },
    async run(v) {
      const report = await systemDf({ root: str(v.root) ?? defaultStoreRoot() });
      if (outputFormat(v) === 'json') printJson(v.verbose ? report : { rows: report.rows });
      else process.stdout.write(v.verbose ? verbose(report) : summary(report));
      return 0;
    },
  },
};

export const SYSTEM = group('system', 'Manage the store (disk usage)', SYSTEM_COMMANDS);
