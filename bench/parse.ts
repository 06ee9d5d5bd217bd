/**
 * Parse throughput of @vlab/dockerfile over the real-Dockerfile corpus (79 files), in MB/s.
 * Not a test: `node --import tsx bench/parse.ts [seconds-per-row]`.
 *
 * Rows: the floor (splitting the text into lines, the least any parser must do), the peer
 * (dockerfile-ast's own parse, which @vlab/dockerfile uses for directives only), and ours:
 * syntax only (BuildKit's node tree), parse() (typed instructions), parse()+check(), and
 * parse()+StageScope evaluation of every instruction.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { check, parse, resolveGlobalArgs, StageScope } from '../packages/dockerfile/src/index.ts';
import { parseSyntax } from '../packages/dockerfile/src/syntax/parse.ts';

const root = new URL('../../shared/corpus/real-dockerfiles/', import.meta.url);
const texts = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(new URL(`${d.name}/`, root))
      .filter((f) => f.endsWith('.Dockerfile'))
      .map((f) => `${d.name}/${f}`),
  )
  .map((f) => readFileSync(new URL(f, root), 'utf8'));
const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);

// The peer, loaded from the package that depends on it (a measurement, not a second import site).
const requireFromPkg = createRequire(new URL('../packages/dockerfile/package.json', import.meta.url));
const { DockerfileParser } = requireFromPkg('dockerfile-ast') as {
  DockerfileParser: { parse(t: string): { getInstructions(): unknown[] } };
};

const seconds = Number(process.argv[2] ?? 1.5);

function measure(fn: (t: string) => unknown): { mbps: number; msPerPass: number; passes: number } {
  for (let i = 0; i < 3; i++) for (const t of texts) fn(t); // warm up
  let passes = 0;
  const t0 = performance.now();
  let elapsed = 0;
  do {
    for (const t of texts) fn(t);
    passes++;
    elapsed = performance.now() - t0;
  } while (elapsed < seconds * 1000);
  return { mbps: (bytes * passes) / 1e6 / (elapsed / 1000), msPerPass: elapsed / passes, passes };
}

const rows: [string, (t: string) => unknown][] = [
  ['floor: split lines', (t) => t.split('\n').length],
  ['peer: dockerfile-ast parse', (t) => DockerfileParser.parse(t).getInstructions().length],
  ['ours: syntax tree (dump level)', (t) => parseSyntax(t).nodes.length],
  ['ours: parse() typed', (t) => parse(t).stages.length],
  ['ours: parse() + check()', (t) => check(parse(t)).length],
  [
    'ours: parse() + StageScope.evaluate all',
    (t) => {
      const df = parse(t);
      const g = resolveGlobalArgs(df, {}, { TARGETPLATFORM: 'linux/amd64', BUILDPLATFORM: 'linux/amd64' });
      for (const s of df.stages) {
        const scope = new StageScope({ globalArgs: g, buildArgs: {}, baseEnv: {}, escape: df.escape });
        for (const i of s.instructions) scope.evaluate(i);
      }
    },
  ],
];

console.log(
  `corpus: ${texts.length} files, ${(bytes / 1024).toFixed(1)} KiB; node ${process.version}; ${seconds}s per row`,
);
const results = rows.map(([name, fn]) => ({ name, ...measure(fn) }));
const ours = results.find((r) => r.name === 'ours: parse() typed')!;
const w = Math.max(...results.map((r) => r.name.length));
console.log(`${'what'.padEnd(w)} | ${'MB/s'.padStart(9)} | ${'ms/corpus'.padStart(9)} | ${'vs parse()'.padStart(10)}`);
console.log(`${'-'.repeat(w)}-|-${'-'.repeat(9)}-|-${'-'.repeat(9)}-|-${'-'.repeat(10)}`);
for (const r of results) {
  console.log(
    `${r.name.padEnd(w)} | ${r.mbps.toFixed(2).padStart(9)} | ${r.msPerPass.toFixed(2).padStart(9)} | ${(r.mbps / ours.mbps).toFixed(2).padStart(9)}x`,
  );
}
