/** exec, pause, unpause, top, diff, commit, cp, port: docker's flags and output over the API. */
import { once } from 'node:events';
import { VlabError } from '@vlab/errors';
import {
  execContainer,
  pauseContainer,
  topContainer,
  unpauseContainer,
  commitContainer,
  copyFrom,
  copyTo,
  diffContainer,
} from '../index.ts';
import { TOOL_COMMANDS } from './tools.ts';
import { list, parseCommand, str, type CommandSpec } from './flags.ts';
import { runCommand, type Command } from './images.ts';
import { splitAtImage } from './run.ts';
import { callerGone } from './client.ts';
import { formatError } from './snippet.ts';
import { table } from './output.ts';
import { openService as open } from './service.ts';

function need(spec: CommandSpec, pos: string[], min: number, max = Infinity): void {
  if (pos.length < min || pos.length > max)
    throw new VlabError('E_BAD_ARG', `"vbuild ${spec.name}" takes ${spec.usage}\nSee 'vbuild ${spec.name} --help'.`);
}

export const EXEC: CommandSpec = {
  name: 'exec',
  usage: '[OPTIONS] CONTAINER COMMAND [ARG...]',
  summary: 'Run a command in a running container',
  flags: {
    interactive: { type: 'boolean', short: 'i', help: "keep STDIN open: the command reads vbuild's stdin" },
    tty: { type: 'boolean', short: 't', help: 'allocate a pseudo-TTY' },
    env: { type: 'string', short: 'e', multiple: true, arg: 'K=V', help: 'set an environment variable' },
    workdir: { type: 'string', short: 'w', arg: 'DIR', help: 'working directory inside the container' },
    user: { type: 'string', short: 'u', arg: 'USER[:GROUP]', help: 'user name or uid (and group)' },
  },
};

/** docker exec: the command's exit code; 126/127 when it cannot run; vbuild's own errors exit 1 (docker's). */
export async function cmdExec(argv: string[]): Promise<number> {
  try {
    const { flags, rest } = splitAtImage(EXEC, argv);
    const p = parseCommand(EXEC, flags);
    if (!p) return 0;
    const [ref, ...cmd] = [...p.positionals, ...rest];
    if (!ref || !cmd.length) need(EXEC, [], 2);
    const v = p.values;
    const svc = await open(v);
    const r = execContainer(svc, ref!, cmd, {
      env: list(v.env),
      workdir: str(v.workdir),
      user: str(v.user),
      tty: v.tty ? { rows: process.stdout.rows, cols: process.stdout.columns } : undefined,
      stdio: 'inherit',
      interactive: Boolean(v.interactive),
    });
    // A killed CLI leaves its exec'd helper running (it is reparented, the command ends on its
    // own): under the server, the client's death stops only the waiting.
    const gone = callerGone();
    const end = gone?.aborted
      ? undefined
      : await (gone ? Promise.race([r, once(gone, 'abort').then(() => undefined)]) : r);
    if (!end) r.catch(() => undefined);
    return end?.exitCode ?? 137;
  } catch (e) {
    if (!(e instanceof VlabError)) throw e;
    process.stderr.write(formatError(e));
    return 1;
  }
}

/** `NAME:PATH` is the container's side; a path starting with / or . is the host's (docker's splitCpArg). */
function cpSide(arg: string): { ref?: string; path: string } {
  if (arg.startsWith('/') || arg.startsWith('.')) return { path: arg };
  const i = arg.indexOf(':');
  return i > 0 ? { ref: arg.slice(0, i), path: arg.slice(i + 1) || '/' } : { path: arg };
}

/** A verb applied to each named container in turn (the first error ends it), printing each name. */
function eachContainer(
  name: string,
  summary: string,
  fn: (svc: Awaited<ReturnType<typeof open>>, ref: string) => Promise<unknown>,
): Command {
  return {
    spec: { name, usage: 'CONTAINER [CONTAINER...]', summary, flags: {} },
    async run(v, pos) {
      need(this.spec, pos, 1);
      const svc = await open(v);
      for (const ref of pos) {
        await fn(svc, ref);
        process.stdout.write(`${ref}\n`);
      }
      return 0;
    },
  };
}

export const CONTAINER_OPS: Record<string, Command> = {
  port: {
    spec: {
      name: 'port',
      usage: 'CONTAINER [PRIVATE_PORT[/PROTO]]',
      summary: 'List port mappings of a container (-p, network private)',
      flags: {},
    },
    async run(v, pos) {
      need(this.spec, pos, 1, 2);
      const c = await (await open(v)).get(pos[0]!);
      const want = pos[1] ? (pos[1].includes('/') ? pos[1] : `${pos[1]}/tcp`) : undefined;
      const maps = (c.config.ports ?? []).filter((p) => !want || `${p.containerPort}/${p.protocol}` === want);
      if (want && !maps.length)
        throw new VlabError('E_PORT_NOT_PUBLISHED', `no public port '${want}' published for ${c.config.name}`);
      for (const p of maps)
        process.stdout.write(
          `${want ? '' : `${p.containerPort}/${p.protocol} -> `}${p.hostIp ?? '0.0.0.0'}:${p.hostPort}\n`,
        );
      return 0;
    },
  },
  pause: eachContainer('pause', 'Pause all processes within containers', pauseContainer),
  unpause: eachContainer('unpause', 'Unpause all processes within containers', unpauseContainer),
  top: {
    spec: { name: 'top', usage: 'CONTAINER', summary: 'Display the running processes of a container', flags: {} },
    async run(v, pos) {
      need(this.spec, pos, 1, 1);
      const t = await topContainer(await open(v), pos[0]!);
      process.stdout.write(table([t.titles, ...t.processes], 20));
      return 0;
    },
  },
  // One verb, as the operands say: docker's `diff CONTAINER`, or the image tool's `diff IMAGE1 IMAGE2`.
  diff: {
    spec: {
      name: 'diff',
      usage: 'CONTAINER | [--format table|json] IMAGE1 IMAGE2',
      summary: "Inspect changes to files on a container's filesystem, or between two images",
      flags: TOOL_COMMANDS.diff!.spec.flags,
    },
    async run(v, pos) {
      if (pos.length === 2) return TOOL_COMMANDS.diff!.run.call(TOOL_COMMANDS.diff!, v, pos);
      need(this.spec, pos, 1, 1);
      for (const c of await diffContainer(await open(v), pos[0]!)) process.stdout.write(`${c.kind} ${c.path}\n`);
      return 0;
    },
  },
  commit: {
    spec: {
      name: 'commit',
      usage: '[OPTIONS] CONTAINER [REPOSITORY[:TAG]]',
      summary: "Create a new image from a container's changes",
      flags: {
        message: { type: 'string', short: 'm', arg: 'MSG', help: 'commit message' },
        author: { type: 'string', short: 'a', arg: 'NAME', help: 'author' },
        change: { type: 'string', short: 'c', multiple: true, arg: 'INSTR', help: 'apply a Dockerfile instruction' },
        pause: { type: 'boolean', short: 'p', help: 'pause the container while it is read (default true)' },
      },
    },
    async run(v, pos) {
      need(this.spec, pos, 1, 2);
      const img = await commitContainer(await open(v), pos[0]!, pos[1], {
        message: str(v.message),
        author: str(v.author),
        changes: list(v.change),
        pause: v.pause !== false,
      });
      process.stdout.write(`${img.configDigest}\n`);
      return 0;
    },
  },
  cp: {
    spec: {
      name: 'cp',
      usage: 'CONTAINER:SRC_PATH DEST_PATH | SRC_PATH CONTAINER:DEST_PATH',
      summary: 'Copy files between a container and the host (resolved inside the container)',
      flags: {},
    },
    async run(v, pos) {
      need(this.spec, pos, 2, 2);
      const [src, dest] = [cpSide(pos[0]!), cpSide(pos[1]!)];
      if (src.path === '-' || dest.path === '-')
        throw new VlabError('E_BAD_ARG', 'cp to or from a tar stream (-) is not supported');
      if (!!src.ref === !!dest.ref)
        throw new VlabError(
          'E_BAD_ARG',
          'copying between containers or between host paths is not supported: one side must be CONTAINER:PATH',
        );
      const svc = await open(v);
      if (src.ref) await copyFrom(svc, src.ref, src.path, dest.path);
      else await copyTo(svc, dest.ref!, src.path, dest.path);
      return 0;
    },
  },
};

/** Commands for main.ts. */
export function containerOpsCommands(): Record<
  string,
  { spec: CommandSpec; run: (argv: string[]) => Promise<number> }
> {
  return {
    exec: { spec: EXEC, run: cmdExec },
    ...Object.fromEntries(
      Object.entries(CONTAINER_OPS).map(([n, c]) => [n, { spec: c.spec, run: (a: string[]) => runCommand(c, a) }]),
    ),
  };
}
