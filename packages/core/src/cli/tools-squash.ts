/** The squash and layers verbs: parse flags, call the API in tools/, print a table or json. */
import { VlabError } from '@vlab/errors';
import { layers, squash, type LayersReport } from '../index.ts';
import { str, type Values } from './flags.ts';
import type { Command } from './images.ts';
import { FORMAT, outputFormat, printJson } from './output.ts';

const storeOf = (v: Values) => ({ root: str(v.root) });

function usage(name: string, u: string): never {
  throw new VlabError('E_BAD_ARG', `usage: vbuild ${name} ${u}\nSee 'vbuild ${name} --help'.`);
}

/** `--format json` prints the API's result; else `table(result)` is written. */
function emit<T>(v: Values, result: T, table: (r: T) => string): number {
  if (outputFormat(v) === 'json') printJson(result);
  else process.stdout.write(table(result));
  return 0;
}

export const SQUASH_COMMANDS: Record<string, Command> = {
  squash: {
    spec: {
      name: 'squash',
      usage: 'IMAGE [-t NAME] [--all]',
      summary: 'Make the layers above the base (or all layers) one layer',
      flags: {
        tag: { type: 'string', short: 't', arg: 'NAME', help: 'name of the result' },
        all: { type: 'boolean', help: "squash the base's layers too (one layer in all)" },
        format: FORMAT,
      },
    },
    async run(v, pos) {
      if (pos.length !== 1) usage(this.spec.name, this.spec.usage);
      const r = await squash(pos[0]!, { ...storeOf(v), tag: str(v.tag), all: Boolean(v.all) });
      return emit(
        v,
        r,
        (x) =>
          `Squashed ${x.squashedLayers} layers into one (${x.layer.size} bytes) above ${x.baseLayers} base layers${x.base ? ` (${x.base})` : ''}\n` +
          `${x.tag ? `${x.tag} ` : ''}${x.imageId}\n`,
      );
    },
  },
  layers: {
    spec: {
      name: 'layers',
      usage: 'IMAGE [--tree] [--format table|json]',
      summary: 'Explore the layers: files added, modified, removed; wasted bytes; efficiency; sharing',
      flags: {
        tree: { type: 'boolean', help: "show each layer's changes as a tree (default a list)" },
        format: FORMAT,
      },
    },
    async run(v, pos) {
      if (pos.length !== 1) usage(this.spec.name, this.spec.usage);
      return emit(v, await layers(pos[0]!, storeOf(v)), (r) => layersTable(r, Boolean(v.tree)));
    },
  },
};

function layersTable(r: LayersReport, tree: boolean): string {
  const out: string[] = [];
  for (const l of r.layers) {
    out.push(
      `LAYER ${l.index}  ${l.digest.slice(7, 19)}  ${l.size} bytes  +${l.added} ~${l.modified} -${l.removed}  wasted ${l.wastedBytes}` +
        (l.sharedWith.length ? `  shared with ${l.sharedWith.join(', ')}` : '') +
        (l.createdBy ? `\n  ${l.createdBy}` : ''),
    );
    for (const c of l.changes) {
      const depth = tree ? c.path.split('/').length - 1 : 0;
      const name = tree ? c.path.slice(c.path.lastIndexOf('/') + 1) : c.path;
      out.push(`  ${c.kind} ${String(c.size).padStart(10)}  ${'  '.repeat(depth)}${name}`);
    }
  }
  out.push(
    `Total file bytes: ${r.totalFileBytes}  Wasted: ${r.wastedBytes}  Efficiency: ${(r.efficiency * 100).toFixed(2)} %`,
  );
  return `${out.join('\n')}\n`;
}
