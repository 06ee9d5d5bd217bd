/**
 * `--cache-to` and `--cache-from` as BuildKit spells them: comma-separated key=value pairs, of
 * which only `type=registry` is supported here. Every key a type does not take is refused (a
 * silently ignored option would be a cache that never works), and so is a value it cannot use.
 */
import { VlabError } from '@vlab/errors';
import { parseReference } from '../registry/reference.ts';

export type CacheMode = 'min' | 'max';

/** Where a build's cache goes: `type=registry,ref=R[,mode=min|max][,compression=gzip|zstd][,ignore-error=true]`. */
export interface CacheExportSpec {
  type: 'registry';
  ref: string;
  /** min (default): the steps of the final image; max: the steps of every stage built. */
  mode: CacheMode;
  compression?: 'gzip' | 'zstd';
  /** A failed export is a warning instead of a failed build (BuildKit's ignore-error). */
  ignoreError?: boolean;
}

/** Where a build may take steps from: `type=registry,ref=R`. */
export interface CacheImportSpec {
  type: 'registry';
  ref: string;
}

// BuildKit's own keys this format always satisfies: accepted when true, refused when false.
const ALWAYS_TRUE = ['oci-mediatypes', 'image-manifest'];
const EXPORT_KEYS = ['type', 'ref', 'mode', 'compression', 'ignore-error', ...ALWAYS_TRUE];
const IMPORT_KEYS = ['type', 'ref'];

function pairs(flag: string, spec: string, allowed: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  // buildx's short form: a bare reference is type=registry,ref=REF
  const full = spec.includes('=') ? spec : `type=registry,ref=${spec}`;
  for (const part of full.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new VlabError('E_BAD_ARG', `${flag} ${spec}: "${part}" is not key=value`);
    const k = part.slice(0, eq).trim();
    if (k in out) throw new VlabError('E_BAD_ARG', `${flag} ${spec}: "${k}" is given twice`);
    out[k] = part.slice(eq + 1).trim();
  }
  if (out.type !== 'registry')
    throw new VlabError(
      'E_BAD_ARG',
      `${flag} type=${out.type ?? ''} is not supported: use type=registry,ref=REGISTRY/REPO:TAG`,
    );
  for (const k of Object.keys(out))
    if (!allowed.includes(k))
      throw new VlabError(
        'E_BAD_ARG',
        `${flag} ${spec}: unknown option "${k}" (type=registry takes ${allowed.filter((a) => a !== 'type').join(', ')})`,
      );
  if (!out.ref) throw new VlabError('E_BAD_ARG', `${flag} ${spec}: ref=REGISTRY/REPO:TAG is required`);
  try {
    parseReference(out.ref);
  } catch (e) {
    throw new VlabError('E_BAD_ARG', `${flag} ref=${out.ref}: ${(e as Error).message}`, { cause: e });
  }
  return out;
}

function bool(flag: string, k: string, v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new VlabError('E_BAD_ARG', `${flag} ${k}=${v}: expected true or false`);
}

/** `--cache-to SPEC`. E_BAD_ARG for anything but a registry ref with known options. */
export function parseCacheTo(spec: string): CacheExportSpec {
  const kv = pairs('--cache-to', spec, EXPORT_KEYS);
  const mode = kv.mode ?? 'min';
  if (mode !== 'min' && mode !== 'max')
    throw new VlabError('E_BAD_ARG', `--cache-to mode=${mode}: expected min or max`);
  const c = kv.compression;
  if (c !== undefined && c !== 'gzip' && c !== 'zstd')
    throw new VlabError('E_BAD_ARG', `--cache-to compression=${c}: expected gzip or zstd`);
  for (const k of ALWAYS_TRUE)
    if (kv[k] !== undefined && !bool('--cache-to', k, kv[k]))
      throw new VlabError(
        'E_BAD_ARG',
        `--cache-to ${k}=false is not supported: the cache is always an OCI image manifest`,
      );
  return {
    type: 'registry',
    ref: kv.ref!,
    mode,
    ...(c ? { compression: c } : {}),
    ...(kv['ignore-error'] !== undefined
      ? { ignoreError: bool('--cache-to', 'ignore-error', kv['ignore-error']) }
      : {}),
  };
}

/** `--cache-from SPEC`. E_BAD_ARG as parseCacheTo. */
export function parseCacheFrom(spec: string): CacheImportSpec {
  const kv = pairs('--cache-from', spec, IMPORT_KEYS);
  return { type: 'registry', ref: kv.ref! };
}
