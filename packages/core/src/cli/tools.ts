/** The image tools: `vbuild history IMAGE`, `vbuild diff IMAGE1 IMAGE2` (tables, or json with --format json), `vbuild rebase`. */
import { VlabError } from '@vlab/errors';
import { defaultStoreRoot, history, imageDiff, rebase } from '../index.ts';
import { str, type Values } from './flags.ts';
import type { Command } from './images.ts';
import { FORMAT, outputFormat, printJson, table } from './output.ts';

const rootOf = (v: Values) => ({ root: str(v.root) ?? defaultStoreRoot() });

/** docker's sizes (go-units HumanSizeWithPrecision, 3 digits): 0B, 26B, 12.3kB, 2.14MB. */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

/** docker's "N units ago" (go-units HumanDuration, roughly). */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '<missing>';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const steps: [number, string][] = [
    [60, 'second'],
    [3600, 'minute'],
    [86400, 'hour'],
    [86400 * 7, 'day'],
    [86400 * 30, 'week'],
    [86400 * 365, 'month'],
  ];
  if (s < 1) return 'Less than a second ago';
  let unit = 1;
  for (const [limit, name] of steps) {
    if (s < limit) {
      const k = Math.floor(s / unit);
      return `${k} ${name}${k === 1 ? '' : 's'} ago`;
    }
    unit = limit;
  }
  const y = Math.floor(s / (86400 * 365));
  return `${y} year${y === 1 ? '' : 's'} ago`;
}

export const TOOL_COMMANDS: Record<string, Command> = {
  history: {
    spec: {
      name: 'history',
      usage: '[--no-trunc] [--format table|json] IMAGE',
      summary: 'Show the history of an image: each step, its size, and the empty layers',
      flags: { 'no-trunc': { type: 'boolean', help: "don't truncate output" }, format: FORMAT },
    },
    async run(v, pos) {
      if (pos.length !== 1) throw new VlabError('E_BAD_ARG', `usage: vbuild history ${this.spec.usage}`);
      const rows = await history(pos[0]!, rootOf(v));
      if (outputFormat(v) === 'json') {
        printJson(rows);
        return 0;
      }
      const full = Boolean(v['no-trunc']);
      const trunc = (s: string, n: number) => (full || s.length <= n ? s : `${s.slice(0, n - 1)}…`);
      const lines = [['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT']];
      for (const r of rows)
        lines.push([
          r.id === '<missing>' || full ? r.id : r.id.slice(7, 19),
          ago(r.created),
          trunc(r.createdBy, 45),
          humanSize(r.size),
          trunc(r.comment, 45),
        ]);
      process.stdout.write(table(lines));
      return 0;
    },
  },
  diff: {
    spec: {
      name: 'diff',
      usage: '[--format table|json] IMAGE1 IMAGE2',
      summary: 'Show the files that differ between two images (A added, C changed, D deleted)',
      flags: { format: FORMAT },
    },
    async run(v, pos) {
      if (pos.length !== 2) throw new VlabError('E_BAD_ARG', `usage: vbuild diff ${this.spec.usage}`);
      const changes = await imageDiff(pos[0]!, pos[1]!, rootOf(v));
      if (outputFormat(v) === 'json') {
        printJson(changes.map((c) => ({ ...c, mode: c.mode.toString(8).padStart(4, '0') })));
        return 0;
      }
      for (const c of changes)
        process.stdout.write(
          `${c.kind} ${c.type}${c.mode.toString(8).padStart(4, '0')} ${String(c.size).padStart(10)} ${c.path}\n`,
        );
      return 0;
    },
  },
  rebase: {
    spec: {
      name: 'rebase',
      usage: '--from OLD_BASE --to NEW_BASE [-t NAME] IMAGE',
      summary: "Put an image's own layers on a new base (the lowest layers must be OLD_BASE's); nothing is rebuilt",
      flags: {
        from: { type: 'string', arg: 'OLD_BASE', help: 'the base the image was built on' },
        to: { type: 'string', arg: 'NEW_BASE', help: 'the base to put under its own layers' },
        tag: { type: 'string', short: 't', arg: 'NAME', help: 'name of the result (default: IMAGE)' },
      },
    },
    async run(v, pos) {
      const from = str(v.from);
      const to = str(v.to);
      if (pos.length !== 1 || !from || !to) throw new VlabError('E_BAD_ARG', `usage: vbuild rebase ${this.spec.usage}`);
      const tag = str(v.tag);
      const r = await rebase(pos[0]!, { ...rootOf(v), from, to, ...(tag ? { tag } : {}) });
      process.stderr.write(`rebased: ${r.replaced} base layers replaced, ${r.kept} own layers kept\n`);
      process.stdout.write(`${r.imageId}\n`);
      return 0;
    },
  },
};
