/** `vbuild build` and `vbuild check`: flags to BuildOptions, results to files, warnings to stderr. */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import {
  build,
  checkDockerfile,
  MAX_DOCKERFILE,
  parseCacheFrom,
  parseCacheTo,
  parseOutput,
  type BuildOptions,
  type CheckWarning,
  type Entitlement,
} from '../index.ts';
import { createRenderer, type ProgressMode } from './progress.ts';
import { TLS_FLAGS, registryOptions } from './registry.ts';
import { intFlag, keyValues, list, parseCommand, str, type CommandSpec, type Values } from './flags.ts';
import { registerDockerfile, ruleUrl, snippet } from './snippet.ts';

const FILE = {
  type: 'string',
  short: 'f',
  arg: 'PATH',
  help: "name of the Dockerfile (default: 'CONTEXT/Dockerfile'; '-': stdin)",
} as const;

export const BUILD: CommandSpec = {
  name: 'build',
  usage: '[OPTIONS] CONTEXT   (CONTEXT: a directory, or - for a tar or a Dockerfile on stdin)',
  summary: 'Build an image from a Dockerfile',
  flags: {
    file: FILE,
    tag: { type: 'string', short: 't', multiple: true, arg: 'NAME[:TAG]', help: 'name and optionally a tag' },
    'build-arg': { type: 'string', multiple: true, arg: 'K=V', help: 'set a build-time variable' },
    'build-context': {
      type: 'string',
      multiple: true,
      arg: 'NAME=VALUE',
      help: 'named context: docker-image://REF | oci-layout://DIR[:TAG] | oci-archive:FILE[:TAG] | docker-archive:FILE | DIR',
    },
    target: { type: 'string', arg: 'STAGE', help: 'the build stage to build' },
    label: { type: 'string', multiple: true, arg: 'K=V', help: 'set metadata on the image' },
    platform: { type: 'string', arg: 'OS/ARCH', help: "target platform (only the host's)" },
    'no-cache': { type: 'boolean', help: 'do not use the cache' },
    squash: { type: 'boolean', help: 'squash the layers the build made into one (the cache keeps them)' },
    'no-cache-filter': { type: 'string', multiple: true, arg: 'STAGE', help: 'do not cache these stages' },
    progress: { type: 'string', arg: 'auto|tty|plain|json', help: 'progress output (default auto)' },
    quiet: { type: 'boolean', short: 'q', help: 'print only the image ID' },
    output: {
      type: 'string',
      short: 'o',
      multiple: true,
      arg: 'type=oci|docker|tar|local,dest=PATH | type=registry,name=REF',
      help: 'output destination',
    },
    iidfile: { type: 'string', arg: 'FILE', help: 'write the image ID to the file' },
    'metadata-file': { type: 'string', arg: 'FILE', help: 'write build result metadata (JSON, as buildx) to the file' },
    check: { type: 'boolean', help: 'check the Dockerfile (lint) instead of building; exit 1 on warnings' },
    network: { type: 'string', arg: 'none|host', help: 'network of every RUN (default none)' },
    'add-host': { type: 'string', multiple: true, arg: 'HOST:IP', help: "add a line to each RUN's /etc/hosts" },
    secret: { type: 'string', multiple: true, arg: 'id=ID,src=FILE', help: 'secret for RUN --mount=type=secret' },
    allow: { type: 'string', multiple: true, arg: 'network.host|security.insecure', help: 'allow an entitlement' },
    memory: { type: 'string', short: 'm', arg: 'SIZE', help: 'memory limit of each RUN' },
    'cpu-quota': { type: 'string', arg: 'US', help: 'CPU microseconds each RUN may use per period' },
    'cpu-period': { type: 'string', arg: 'US', help: 'CFS period in microseconds' },
    'pids-limit': { type: 'string', arg: 'N', help: 'processes per RUN (default 2048; -1: unlimited)' },
    ulimit: { type: 'string', multiple: true, arg: 'nofile=N[:N]', help: 'ulimit of each RUN (nofile only)' },
    'shm-size': { type: 'string', arg: 'SIZE', help: 'size of /dev/shm in each RUN (default 64m)' },
    pull: { type: 'boolean', help: 'always check the registry for newer FROM / COPY --from images' },
    push: { type: 'boolean', help: 'push every tag to its registry once built (as --output type=registry)' },
    'cache-to': {
      type: 'string',
      multiple: true,
      arg: 'type=registry,ref=REF[,mode=min|max]',
      help: "export the build's cache to a registry (merged with what REF holds)",
    },
    'cache-from': {
      type: 'string',
      multiple: true,
      arg: 'type=registry,ref=REF',
      help: 'take steps from a registry cache (pulling only the layers the build needs)',
    },
    ...TLS_FLAGS,
  },
};

export const CHECK: CommandSpec = {
  name: 'check',
  usage: '[-f Dockerfile] [CONTEXT]',
  summary: 'Print the lint warnings of a Dockerfile (exit 1 when there are any), as docker build --check',
  flags: { file: FILE },
};

/** Where the Dockerfile comes from: a path (shown as given), or stdin. */
async function dockerfileOption(
  v: Values,
  contextArg: string,
  stdin: NodeJS.ReadableStream,
): Promise<BuildOptions['dockerfile']> {
  const file = str(v.file);
  if (file === '-') {
    if (contextArg === '-')
      throw new VlabError(
        'E_BAD_ARG',
        'cannot read both the context and the Dockerfile from stdin (-f - with CONTEXT -)',
      );
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of stdin) {
      chunks.push(Buffer.from(c));
      if ((n += c.length) > MAX_DOCKERFILE)
        throw new VlabError('E_BAD_ARG', `the Dockerfile on stdin is over ${MAX_DOCKERFILE} bytes`);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    registerDockerfile('Dockerfile', 'Dockerfile', text);
    return { text };
  }
  if (file !== undefined) {
    // With a context on stdin, docker reads -f inside that context.
    if (contextArg !== '-') registerDockerfile(path.resolve(file), file);
    return file;
  }
  if (contextArg !== '-') registerDockerfile(path.join(path.resolve(contextArg), 'Dockerfile'), 'Dockerfile');
  return undefined;
}

export async function cmdCheck(argv: string[]): Promise<number> {
  const p = parseCommand(CHECK, argv);
  if (!p) return 0;
  if (p.positionals.length > 1)
    throw new VlabError(
      'E_BAD_ARG',
      `"vbuild check" takes at most 1 argument (the context)\nSee 'vbuild check --help'.`,
    );
  const context = p.positionals[0] ?? '.';
  return printChecks(
    (await checkDockerfile({ context, dockerfile: await dockerfileOption(p.values, context, process.stdin) })).warnings,
  );
}

/** buildx's --check report; exit 1 when anything was found. */
function printChecks(warnings: CheckWarning[]): number {
  const out = process.stderr;
  if (!warnings.length) {
    out.write('Check complete, no warnings found.\n');
    return 0;
  }
  out.write(`Check complete, ${warnings.length} warning${warnings.length === 1 ? ' has' : 's have'} been found!\n`);
  for (const w of warnings) {
    const { name, lines } = snippet(w.location);
    out.write(
      `\nWARNING: ${w.rule} - ${ruleUrl(w.rule)}\n${w.message}\n${lines.length ? lines.join('\n') : `${name}:${w.location.line}`}\n`,
    );
  }
  return 1;
}

export async function cmdBuild(argv: string[]): Promise<number> {
  const p = parseCommand(BUILD, argv);
  if (!p) return 0;
  const v = p.values;
  if (p.positionals.length !== 1)
    throw new VlabError(
      'E_BAD_ARG',
      `"vbuild build" requires exactly 1 argument (the context)\nSee 'vbuild build --help'.`,
    );
  const contextArg = p.positionals[0]!;
  const dockerfile = await dockerfileOption(v, contextArg, process.stdin);
  if (v.check && contextArg === '-' && !dockerfile)
    throw new VlabError(
      'E_BAD_ARG',
      "--check reads no context from stdin: give the Dockerfile with -f - (or use 'vbuild check -f -')",
    );
  if (v.check)
    return printChecks(
      (await checkDockerfile({ context: contextArg === '-' ? undefined : contextArg, dockerfile })).warnings,
    );
  const progress = ((v.quiet ? 'quiet' : str(v.progress)) ?? 'auto') as ProgressMode;
  if (!['auto', 'tty', 'plain', 'json', 'quiet'].includes(progress))
    throw new VlabError('E_BAD_ARG', `--progress must be auto, tty, plain or json`);
  const network = str(v.network);
  if (network !== undefined && network !== 'none' && network !== 'host')
    throw new VlabError('E_BAD_ARG', '--network must be none or host');
  const ac = new AbortController();
  const render = createRenderer(progress);
  process.once('SIGINT', () => ac.abort());
  process.once('SIGTERM', () => ac.abort());
  const tags = list(v.tag);
  const res = await build({
    context: contextArg === '-' ? { stream: process.stdin } : contextArg,
    dockerfile,
    tags,
    buildArgs: keyValues(list(v['build-arg'])),
    target: str(v.target),
    labels: labels(list(v.label)),
    platform: str(v.platform),
    noCache: Boolean(v['no-cache']),
    squash: Boolean(v.squash),
    noCacheFilter: list(v['no-cache-filter']),
    output: list(v.output).map(parseOutput),
    cacheTo: list(v['cache-to']).map(parseCacheTo),
    cacheFrom: list(v['cache-from']).map(parseCacheFrom),
    network: network as 'none' | 'host' | undefined,
    allow: list(v.allow) as Entitlement[],
    buildContexts: buildContexts(list(v['build-context'])),
    addHosts: list(v['add-host']),
    ulimits: list(v.ulimit),
    shmSize: str(v['shm-size']),
    memory: str(v.memory),
    cpuQuota: intFlag(v['cpu-quota'], 'cpu-quota'),
    cpuPeriod: intFlag(v['cpu-period'], 'cpu-period'),
    pidsLimit: intFlag(v['pids-limit'], 'pids-limit'),
    secrets: secrets(list(v.secret)),
    root: str(v.root),
    pull: Boolean(v.pull),
    push: Boolean(v.push),
    registry: registryOptions(v),
    signal: ac.signal,
    onEvent: render,
  }).finally(() => render.end()); // the final frame, also of a failed build, before its error
  const iid = str(v.iidfile);
  if (iid) await fsp.writeFile(iid, res.imageId); // docker writes it without a newline
  const meta = str(v['metadata-file']);
  if (meta) {
    const m: Record<string, string> = {
      'containerimage.config.digest': res.imageId,
      'containerimage.digest': res.digest,
    };
    if (tags.length) m['image.name'] = tags.join(',');
    await fsp.writeFile(meta, `${JSON.stringify(m, null, 2)}\n`);
  }
  if (progress === 'quiet') process.stdout.write(`${res.imageId}\n`);
  return 0;
}

/** `--label K=V`; `--label K` is an empty value, as docker sets it. */
function labels(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq === 0) throw new VlabError('E_BAD_ARG', `--label ${item}: the key is empty`);
    if (eq < 0) out[item] = '';
    else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function secrets(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of items) {
    const kv = keyValues(s.split(','));
    if (!kv.id || !(kv.src || kv.source)) throw new VlabError('E_BAD_ARG', `--secret ${s}: expected id=ID,src=FILE`);
    out[kv.id] = path.resolve(kv.src ?? kv.source!);
  }
  return out;
}

/** `--build-context NAME=VALUE`, repeatable (the value may hold '=' itself). */
function buildContexts(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1)
      throw new VlabError(
        'E_BAD_ARG',
        `--build-context ${item}: expected NAME=VALUE (e.g. base=oci-layout:///path/to/layout:tag)`,
      );
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}
