/**
 * Errors and lint warnings as BuildKit prints them: the Dockerfile's name as the user gave it,
 * then a snippet of the source with line numbers, `>>>` on the offending line and a caret under
 * its column.
 */
import path from 'node:path';
import { VlabError, type SourceLocation } from '@vlab/errors';
import { readDockerfileAgain as readDockerfile } from '../index.ts';

/** Lines of context shown before and after the offending line. */
const AROUND = 2;
const RULER = '--------------------';

/** Dockerfiles this command read: the name to show for each (as given with -f), and the text when not on disk. */
const sources = new Map<string, { name: string; text?: string }>();

/** A new command starts (the warm server runs many in one process). */
export function forgetDockerfiles(): void {
  sources.clear();
}

export function registerDockerfile(file: string, name: string, text?: string): void {
  sources.set(file, { name, text });
}

function source(file: string | undefined): { name: string; text?: string } {
  const f = file ?? 'Dockerfile';
  const known = sources.get(f);
  if (known?.text !== undefined || !path.isAbsolute(f)) return known ?? { name: f };
  try {
    return { name: known?.name ?? f, text: readDockerfile(f) };
  } catch {
    return { name: known?.name ?? f };
  }
}

/** `name:line` and the snippet, or just the name when the text cannot be read. */
export function snippet(loc: SourceLocation): { name: string; lines: string[] } {
  const src = source(loc.file);
  if (src.text === undefined) return { name: src.name, lines: [] };
  const text = src.text.replace(/\r?\n$/, '').split(/\r?\n/);
  const from = Math.max(1, loc.line - AROUND);
  const to = Math.min(text.length, loc.line + AROUND);
  const lines = [`${src.name}:${loc.line}`, RULER];
  for (let n = from; n <= to; n++) {
    const l = text[n - 1] ?? '';
    lines.push(`${String(n).padStart(4)} | ${n === loc.line ? '>>>' : '   '} ${l}`.trimEnd());
    if (n === loc.line) {
      // Tabs are kept in the padding so the caret lines up under a tab-indented column.
      const pad = l.slice(0, Math.max(0, loc.column - 1)).replace(/[^\t]/g, ' ');
      lines.push(`     |     ${pad}^`);
    }
  }
  lines.push(RULER);
  return { name: src.name, lines };
}

/** The whole error report of a failed command (ends with a newline). */
export function formatError(e: VlabError): string {
  if (!e.location) return `ERROR: ${e.message} [${e.code}]\n`;
  const { name, lines } = snippet(e.location);
  const head = lines.length ? `${lines.join('\n')}\n` : '';
  return `${head}ERROR: ${name}:${e.location.line}:${e.location.column}: ${e.message} [${e.code}]\n`;
}

/** BuildKit's rule URLs: `FromAsCasing` → …/rule/from-as-casing/. */
export function ruleUrl(rule: string): string {
  return `https://docs.docker.com/go/dockerfile/rule/${rule.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()}/`;
}
