/** The image and store commands: import, images, tag, rmi, load, save, inspect, prune, fsck. */
import { VlabError } from '@vlab/errors';
import {
  defaultStoreRoot,
  fsck,
  importRootfs,
  inspect,
  listImages,
  load,
  openEngine,
  prune,
  rmi,
  save,
  OUTPUT_TYPES,
  type OutputType,
  tag,
} from '../index.ts';
import { parseCommand, str, type CommandSpec, type Values } from './flags.ts';
import { printJson } from './output.ts';

const storeOf = (v: Values) => ({ root: str(v.root) });

function usage(spec: CommandSpec): never {
  throw new VlabError('E_BAD_ARG', `usage: vbuild ${spec.name} ${spec.usage}\nSee 'vbuild ${spec.name} --help'.`);
}

export interface Command {
  spec: CommandSpec;
  run(values: Values, positionals: string[]): Promise<number>;
}

/** A command whose flags parseCommand handles (and --help). */
export function runCommand(c: Command, argv: string[]): Promise<number> {
  const p = parseCommand(c.spec, argv);
  return p ? c.run(p.values, p.positionals) : Promise.resolve(0);
}

/** A verb with sub-verbs (`vbuild container ls`, `vbuild system df`): `extra` ones parse their own argv. */
export function group(
  name: string,
  summary: string,
  subs: Record<string, Command>,
  extra: Record<string, (argv: string[]) => Promise<number>> = {},
) {
  return {
    spec: { name, usage: 'COMMAND', summary, flags: {} } as CommandSpec,
    run: (argv: string[]): Promise<number> => {
      const sub = argv[0];
      if (sub && extra[sub]) return extra[sub](argv.slice(1));
      const c = sub ? subs[sub] : undefined;
      if (!c) {
        process.stdout.write(
          `Usage:  vbuild ${name} COMMAND\n\nCommands: ${[...Object.keys(extra), ...Object.keys(subs)].sort().join(', ')}\n`,
        );
        return Promise.resolve(sub ? 1 : 0);
      }
      return runCommand(c, argv.slice(1));
    },
  };
}

export const IMAGE_COMMANDS: Record<string, Command> = {
  import: {
    spec: {
      name: 'import',
      usage: 'ROOTFS.tar NAME[:TAG]',
      summary: 'Make a one-layer base image from a rootfs tarball',
      flags: {},
    },
    async run(v, pos) {
      if (pos.length !== 2) usage(this.spec);
      const img = await importRootfs(pos[0]!, pos[1]!, storeOf(v));
      process.stdout.write(`${img.imageId}\n`);
      return 0;
    },
  },
  images: {
    spec: { name: 'images', usage: '', summary: 'List images in the store', flags: {} },
    async run(v) {
      const list = await listImages(storeOf(v));
      process.stdout.write(`${'REPOSITORY:TAG'.padEnd(40)} IMAGE ID       SIZE\n`);
      for (const { ref, imageId, size } of list)
        process.stdout.write(`${ref.padEnd(40)} ${imageId.slice(7, 19)}   ${(size / 1e6).toFixed(1)}MB\n`);
      return 0;
    },
  },
  tag: {
    spec: { name: 'tag', usage: 'SOURCE TARGET', summary: 'Add a name to an image', flags: {} },
    async run(v, pos) {
      if (pos.length !== 2) usage(this.spec);
      await tag(pos[0]!, pos[1]!, storeOf(v));
      return 0;
    },
  },
  rmi: {
    spec: {
      name: 'rmi',
      usage: '[-f] NAME...',
      summary: 'Remove names from images',
      flags: { force: { type: 'boolean', short: 'f', help: 'even when a container uses the image' } },
    },
    async run(v, pos) {
      if (!pos.length) usage(this.spec);
      for (const ref of pos) {
        await rmi(ref, { ...storeOf(v), force: Boolean(v.force) });
        process.stdout.write(`Untagged: ${ref}\n`);
      }
      return 0;
    },
  },
  load: {
    spec: {
      name: 'load',
      usage: '-i FILE [NAME[:TAG]]',
      summary: 'Load a docker-archive or OCI archive (docker save / skopeo copy)',
      flags: { input: { type: 'string', short: 'i', arg: 'FILE', help: 'the archive to read' } },
    },
    async run(v, pos) {
      const input = str(v.input);
      if (!input || pos.length > 1) usage(this.spec);
      const name = pos[0];
      const img = await load(input, { ...storeOf(v), tag: name });
      process.stdout.write(`Loaded image ${name ?? img.digest} (${img.imageId})\n`);
      return 0;
    },
  },
  save: {
    spec: {
      name: 'save',
      usage: `-o DEST [--format ${OUTPUT_TYPES.join('|')}] NAME`,
      summary: 'Write an image to a docker-archive (default), an OCI archive or a rootfs for another container system',
      flags: {
        output: { type: 'string', short: 'o', arg: 'DEST', help: 'the archive, file or directory to write' },
        format: {
          type: 'string',
          arg: 'FORMAT',
          help: 'docker (default), oci, rootfs-tar, rootfs-dir, squashfs, lxc or openvz',
        },
      },
    },
    async run(v, pos) {
      const output = str(v.output);
      if (!output || pos.length !== 1) usage(this.spec);
      const format = str(v.format) ?? 'docker';
      if (!(OUTPUT_TYPES as readonly string[]).includes(format) || format === 'local')
        throw new VlabError(
          'E_BAD_ARG',
          `--format must be one of ${OUTPUT_TYPES.filter((t) => t !== 'local').join(', ')}, got "${format}"`,
        );
      await save(pos[0]!, output, { ...storeOf(v), format: format as OutputType });
      return 0;
    },
  },
  inspect: {
    spec: { name: 'inspect', usage: 'NAME', summary: 'Print the image config', flags: {} },
    async run(v, pos) {
      if (pos.length !== 1) usage(this.spec);
      printJson(await inspect(pos[0]!, storeOf(v)));
      return 0;
    },
  },
  prune: {
    spec: {
      name: 'prune',
      usage: '[--all]',
      summary: 'Delete blobs and snapshots no tag (or, without --all, no cache entry) reaches',
      flags: { all: { type: 'boolean', short: 'a', help: 'also delete what only the build cache reaches' } },
    },
    async run(v) {
      const engine = await openEngine(str(v.root));
      const r = await prune(engine.store, engine.cache, engine.snapshots, { all: Boolean(v.all) });
      process.stdout.write(
        `Deleted ${r.blobsRemoved} blobs, ${r.snapshotsRemoved} snapshots, ${r.cacheRecordsRemoved} cache records; reclaimed ${(r.bytesFreed / 1e6).toFixed(1)}MB\n`,
      );
      return 0;
    },
  },
  fsck: {
    spec: {
      name: 'fsck',
      usage: '[--repair]',
      summary: 'Check every blob, reference, snapshot and cache record, and find what dead builds left',
      flags: { repair: { type: 'boolean', help: 'remove what is safe to remove, then check again' } },
    },
    /** One line per problem, `<kind> <target>: <message>`; exit 1 unless clean. */
    async run(v) {
      const report = await fsck(str(v.root) ?? defaultStoreRoot(), { repair: Boolean(v.repair) });
      for (const p of report.repaired) process.stdout.write(`repaired ${p.kind} ${p.target}: ${p.message}\n`);
      for (const p of report.problems)
        process.stdout.write(`${p.kind} ${p.target}: ${p.message}${p.repairable ? '' : ' (not repairable)'}\n`);
      const n = report.problems.length;
      process.stderr.write(
        n
          ? `fsck: ${n} problem${n > 1 ? 's' : ''}${v.repair ? ' left' : ''}\n`
          : `fsck: clean${report.repaired.length ? ` (${report.repaired.length} repaired)` : ''}\n`,
      );
      return n ? 1 : 0;
    },
  },
};
