/** `vbuild volume create|ls|inspect|rm|prune` (docker's output). */
import { VlabError } from '@vlab/errors';
import type { Volume } from '../index.ts';
import { keyValues, list } from './flags.ts';
import type { Command } from './images.ts';
import { printJson } from './output.ts';
import { openService as open } from './service.ts';

const json = (v: Volume) => ({
  CreatedAt: v.createdAt,
  Driver: v.driver,
  Labels: v.labels,
  Mountpoint: v.mountpoint,
  Name: v.name,
  Options: {},
  Scope: 'local',
});

export const VOLUME_COMMANDS: Record<string, Command> = {
  create: {
    spec: {
      name: 'volume create',
      usage: '[NAME]',
      summary: 'Create a volume (a random name when none is given)',
      flags: { label: { type: 'string', multiple: true, arg: 'K=V', help: 'set metadata on the volume' } },
    },
    async run(v, pos) {
      const svc = await open(v);
      const vol = await svc.volumes.create(pos[0], { labels: keyValues(list(v.label)) });
      process.stdout.write(`${vol.name}\n`);
      return 0;
    },
  },
  ls: {
    spec: {
      name: 'volume ls',
      usage: '[-q]',
      summary: 'List volumes',
      flags: { quiet: { type: 'boolean', short: 'q', help: 'only names' } },
    },
    async run(v) {
      const vols = await (await open(v)).volumes.list();
      if (v.quiet) process.stdout.write(vols.map((x) => `${x.name}\n`).join(''));
      else
        process.stdout.write(`DRIVER    VOLUME NAME\n${vols.map((x) => `${x.driver.padEnd(10)}${x.name}\n`).join('')}`);
      return 0;
    },
  },
  inspect: {
    spec: { name: 'volume inspect', usage: 'VOLUME...', summary: 'Print volumes as JSON', flags: {} },
    async run(v, pos) {
      if (!pos.length) throw new VlabError('E_BAD_ARG', '"vbuild volume inspect" requires at least 1 argument');
      const svc = await open(v);
      const out = [];
      for (const n of pos) out.push(json(await svc.volumes.get(n)));
      printJson(out);
      return 0;
    },
  },
  rm: {
    spec: {
      name: 'volume rm',
      usage: 'VOLUME...',
      summary: 'Remove volumes no container uses',
      flags: { force: { type: 'boolean', short: 'f', help: 'no error for a missing volume' } },
    },
    async run(v, pos) {
      if (!pos.length) throw new VlabError('E_BAD_ARG', '"vbuild volume rm" requires at least 1 argument');
      const svc = await open(v);
      for (const n of pos) {
        try {
          await svc.removeVolume(n);
        } catch (e) {
          if (v.force && e instanceof VlabError && e.code === 'E_VOLUME_NOT_FOUND') continue;
          throw e;
        }
        process.stdout.write(`${n}\n`);
      }
      return 0;
    },
  },
  prune: {
    spec: {
      name: 'volume prune',
      usage: '[-f]',
      summary: 'Remove every volume no container uses',
      flags: {
        force: { type: 'boolean', short: 'f', help: 'do not prompt (vbuild never does)' },
        all: { type: 'boolean', short: 'a', help: 'named ones too (always, as docker 20.10)' },
      },
    },
    async run(v) {
      const gone = await (await open(v)).pruneVolumes();
      process.stdout.write(`Deleted Volumes:\n${gone.map((n) => `${n}\n`).join('')}\nTotal reclaimed space: 0B\n`);
      return 0;
    },
  },
};
