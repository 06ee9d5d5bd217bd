/**
 * docker run's mount flags as data: `-v`, `--mount`, `--tmpfs`, and the image's VOLUME list.
 * Container paths must be absolute and stay inside the container (no `..`); host paths of binds
 * must be absolute. Everything else (`./x`, `a/../..`) is E_VOLUME_PATH, before anything is made.
 */
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { checkVolumeName } from './volumes.ts';
import type { ContainerMount } from './types.ts';

/** An absolute, normalised container path that is not `/` and has no `..` part. */
export function containerPath(p: string, what: string): string {
  if (!p.startsWith('/'))
    throw new VlabError('E_VOLUME_PATH', `invalid ${what} "${p}": the path in the container must be absolute`);
  if (p.split('/').includes('..'))
    throw new VlabError('E_VOLUME_PATH', `invalid ${what} "${p}": ".." would escape the path it names`);
  const n = path.posix.normalize(p).replace(/\/+$/, '');
  if (!n) throw new VlabError('E_VOLUME_PATH', `invalid ${what} "${p}": cannot mount over the container's /`);
  return n;
}

function hostPath(p: string, what: string): string {
  if (!path.isAbsolute(p)) throw new VlabError('E_VOLUME_PATH', `invalid ${what} "${p}": a host path must be absolute`);
  return path.resolve(p);
}

/** `-v SRC:DST[:OPTS]`, `-v NAME:DST[:OPTS]`, `-v DST` (anonymous volume). */
export function parseVolumeFlag(spec: string): ContainerMount & { nocopy?: boolean } {
  const parts = spec.split(':');
  if (parts.length > 3 || parts.some((p) => p === ''))
    throw new VlabError('E_VOLUME_PATH', `invalid volume specification "${spec}": use SRC:DST[:ro]`);
  if (parts.length === 1) return { type: 'volume', target: containerPath(parts[0]!, 'volume'), anonymous: true };
  const [src, dst, opts = ''] = parts as [string, string, string?];
  let readonly = false;
  let nocopy = false;
  for (const o of opts.split(',').filter(Boolean)) {
    if (o === 'ro') readonly = true;
    else if (o === 'rw') readonly = false;
    else if (o === 'nocopy') nocopy = true;
    else if (!['z', 'Z', 'rprivate', 'private', 'delegated', 'cached', 'consistent'].includes(o))
      throw new VlabError('E_BAD_ARG', `invalid mode "${o}" in volume specification "${spec}"`);
  }
  const target = containerPath(dst, 'volume');
  if (src.startsWith('/') || src.startsWith('.') || src.includes('/')) {
    return { type: 'bind', source: hostPath(src, 'volume source'), target, readonly };
  }
  return { type: 'volume', source: checkVolumeName(src), target, readonly, nocopy };
}

/** `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,volume-nocopy][,tmpfs-size=…][,tmpfs-mode=…]`. */
export function parseMountFlag(spec: string): ContainerMount & { nocopy?: boolean } {
  const kv = new Map<string, string>();
  for (const field of spec.split(',')) {
    const eq = field.indexOf('=');
    const k = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    kv.set(k, eq < 0 ? 'true' : field.slice(eq + 1));
  }
  const type = kv.get('type') ?? 'volume';
  const target = kv.get('target') ?? kv.get('destination') ?? kv.get('dst');
  const source = kv.get('source') ?? kv.get('src');
  const ro = kv.get('readonly') ?? kv.get('ro');
  const readonly = ro !== undefined && ro !== 'false' && ro !== '0';
  const known = ['type', 'target', 'destination', 'dst', 'source', 'src', 'readonly', 'ro'];
  const extra: Record<string, string[]> = {
    bind: ['bind-propagation'],
    volume: ['volume-nocopy'],
    tmpfs: ['tmpfs-size', 'tmpfs-mode'],
  };
  if (!extra[type]) throw new VlabError('E_BAD_ARG', `--mount: type must be bind, volume or tmpfs, got "${type}"`);
  for (const k of kv.keys())
    if (!known.includes(k) && !extra[type]!.includes(k))
      throw new VlabError('E_BAD_ARG', `--mount: unexpected key "${k}" for type ${type}`);
  if (!target) throw new VlabError('E_VOLUME_PATH', `--mount "${spec}": target is required`);
  const t = containerPath(target, 'mount target');
  if (type === 'tmpfs') {
    if (source) throw new VlabError('E_BAD_ARG', `--mount: a tmpfs has no source`);
    const options: string[] = [];
    if (kv.has('tmpfs-size')) options.push(`size=${kv.get('tmpfs-size')}`);
    if (kv.has('tmpfs-mode')) options.push(`mode=${kv.get('tmpfs-mode')}`);
    return { type: 'tmpfs', target: t, readonly, options };
  }
  if (type === 'bind') {
    if (!source) throw new VlabError('E_VOLUME_PATH', `--mount "${spec}": a bind needs a source`);
    return { type: 'bind', source: hostPath(source, 'bind source'), target: t, readonly };
  }
  const nocopy = ['true', '1', ''].includes(kv.get('volume-nocopy') ?? 'no');
  if (!source) return { type: 'volume', target: t, readonly, anonymous: true, nocopy };
  return { type: 'volume', source: checkVolumeName(source), target: t, readonly, nocopy };
}

/** `--tmpfs /path[:opt,opt]` (docker's defaults: noexec, nosuid, nodev are the caller's to add). */
export function parseTmpfsFlag(spec: string): ContainerMount {
  const colon = spec.indexOf(':');
  const target = containerPath(colon < 0 ? spec : spec.slice(0, colon), 'tmpfs path');
  const options =
    colon < 0
      ? []
      : spec
          .slice(colon + 1)
          .split(',')
          .filter(Boolean);
  for (const o of options)
    if (
      !/^(size=\d+[kmg%]?|mode=[0-7]{3,4}|uid=\d+|gid=\d+|nr_inodes=\d+[kmg]?|rw|ro|exec|noexec|nosuid|suid|nodev|dev)$/.test(
        o,
      )
    )
      throw new VlabError('E_BAD_ARG', `--tmpfs ${spec}: unsupported option "${o}"`);
  return {
    type: 'tmpfs',
    target,
    options: options.filter((o) => o !== 'ro' && o !== 'rw'),
    readonly: options.includes('ro'),
  };
}
