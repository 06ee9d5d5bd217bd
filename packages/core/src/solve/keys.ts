import { createHash } from 'node:crypto';

/**
 * Cache key of a step: digest of its parent's key, the normalized (expanded) instruction, the
 * build args it used and the checksum of content it reads. Source positions are left out, so
 * moving a line or adding a comment keeps the cache.
 */
export function stepKey(parts: {
  parent: string;
  instruction: unknown;
  args: Record<string, string>;
  content?: string;
  platform: string;
}): string {
  const h = createHash('sha256');
  h.update(
    JSON.stringify([
      parts.parent,
      normalize(parts.instruction),
      sortObj(parts.args),
      parts.content ?? '',
      parts.platform,
    ]),
  );
  return `sha256:${h.digest('hex')}`;
}

/** JSON of an instruction without its source range/text. */
export function normalize(inst: unknown): string {
  return JSON.stringify(inst, (k, v) => (k === 'range' || k === 'original' ? undefined : v));
}

export function sortObj(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}
