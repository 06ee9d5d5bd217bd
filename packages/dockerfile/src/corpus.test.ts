/**
 * Real-world Dockerfiles (/work/shared/corpus/real-dockerfiles, 79 files): every file parses,
 * and the stage and instruction counts equal those of an independent counter written here
 * with plain regular expressions (no code shared with the parser), plus the corpus-wide
 * numbers that the corpus's SOURCE.md states.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { parse, type RunInstruction, type CopyInstruction } from './index.ts';

const root = new URL('../../../../shared/corpus/real-dockerfiles/', import.meta.url);
const files = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(new URL(`${d.name}/`, root))
      .filter((f) => f.endsWith('.Dockerfile'))
      .map((f) => `${d.name}/${f}`),
  )
  .sort();
const read = (f: string) => readFileSync(new URL(f, root), 'utf8');

/** Independent count: logical lines, skipping comments, continuations and heredoc bodies. */
function independentCount(text: string): { froms: number; instructions: number } {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const esc = /^#\s*escape\s*=\s*`/im.test(lines.slice(0, 5).join('\n')) ? '`' : '\\';
  const endsWithEscape = (l: string) => {
    const t = l.replace(/[ \t]+$/, '');
    return t.endsWith(esc) && !t.endsWith(esc + esc);
  };
  let froms = 0;
  let instructions = 0;
  let continuing = false;
  const pending: { name: string; chomp: boolean }[] = [];
  let logical = '';
  for (const line of lines) {
    if (pending.length > 0) {
      const cand = pending[0].chomp ? line.replace(/^\t+/, '') : line;
      if (cand === pending[0].name) pending.shift();
      continue;
    }
    if (/^\s*#/.test(line)) continue;
    if (!continuing) {
      if (line.trim() === '') continue;
      instructions++;
      if (/^\s*from\s/i.test(line)) froms++;
      logical = line;
    } else if (line.trim() !== '') logical += line;
    continuing = endsWithEscape(line);
    if (!continuing && /^\s*(run|copy|add)\s/i.test(logical) && !/^\s*\w+\s+(--\S+\s+)*\[/.test(logical)) {
      for (const m of logical.matchAll(/(?:^|\s)\d*<<(-?)(["']?)([A-Za-z0-9_]+)\2/g))
        pending.push({ name: m[3], chomp: m[1] === '-' });
    }
  }
  return { froms, instructions };
}

describe('real-world Dockerfiles', () => {
  it('has all 79 files', () => expect(files).toHaveLength(79));

  it.each(files)('%s parses with the independently counted stages and instructions', (f) => {
    const text = read(f);
    const df = parse(text, { file: f });
    const want = independentCount(text);
    const got = df.globalArgs.length + df.stages.reduce((n, s) => n + 1 + s.instructions.length, 0);
    expect({ froms: df.stages.length, instructions: got }).toEqual(want);
  });

  it('matches the corpus-wide numbers of SOURCE.md', () => {
    let heredocs = 0,
      escape = 0,
      syntax = 0,
      argFirst = 0,
      multiFrom = 0,
      mount = 0;
    let buildkitRootFroms = 0;
    for (const f of files) {
      const df = parse(read(f));
      const all = df.stages.flatMap((s) => s.instructions);
      if (
        all.some(
          (i) =>
            (i.kind === 'RUN' || i.kind === 'COPY' || i.kind === 'ADD') &&
            (i as RunInstruction | CopyInstruction).heredocs.length > 0,
        )
      )
        heredocs++;
      if (df.directives.escape !== undefined) escape++;
      if (df.syntax !== undefined) syntax++;
      if (df.globalArgs.length > 0) argFirst++;
      if (df.stages.length > 1) multiFrom++;
      if (all.some((i) => i.kind === 'RUN' && i.mounts.length > 0)) mount++;
      if (f === 'buildkit/Dockerfile.Dockerfile') buildkitRootFroms = df.stages.length;
    }
    expect({ heredocs, escape, syntax, argFirst, multiFrom, mount, buildkitRootFroms }).toEqual({
      heredocs: 13,
      escape: 5,
      syntax: 13,
      argFirst: 19,
      multiFrom: 21,
      mount: 16,
      buildkitRootFroms: 49,
    });
  });
});
