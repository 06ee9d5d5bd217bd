/** The container verbs: ps, logs, wait, stop, kill, start, restart, rename, rm, inspect, container …. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import {
  ContainerService,
  commandText,
  defaultStoreRoot,
  followLogs,
  humanDuration,
  inspectJson,
  readLogs,
  shortId,
  statusText,
  stateWord,
  type Container,
  type LogEntry,
} from '../index.ts';
import { callerGone } from './client.ts';
import { intFlag, str, type CommandSpec, type Values } from './flags.ts';
import { group, runCommand, type Command } from './images.ts';
import { cmdCreate, cmdRun, CREATE, RUN } from './run.ts';
import { VOLUME_COMMANDS } from './volumes.ts';
import { outputFormat, printJson, table } from './output.ts';
import { openService as open } from './service.ts';

function need(spec: CommandSpec, pos: string[], min = 1): void {
  if (pos.length < min)
    throw new VlabError(
      'E_BAD_ARG',
      `"vbuild ${spec.name}" requires at least ${min} argument${min > 1 ? 's' : ''}: ${spec.usage}\nSee 'vbuild ${spec.name} --help'.`,
    );
}

/** One verb over several containers, as docker does: each is tried, an error is printed, exit 1 at the end. */
async function each(pos: string[], fn: (ref: string) => Promise<void>): Promise<number> {
  let failed: unknown;
  for (const ref of pos) {
    try {
      await fn(ref);
    } catch (e) {
      if (!(e instanceof VlabError) || pos.length === 1) throw e;
      process.stderr.write(`Error: ${e.message} [${e.code}]\n`);
      failed = e;
    }
  }
  return failed ? 1 : 0;
}

function psJson(c: Container, now: number): string {
  return JSON.stringify({
    Command: commandText(c, false),
    CreatedAt: c.config.created,
    ID: shortId(c.config.id),
    Image: c.config.image,
    Labels: Object.entries(c.config.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    Mounts: c.config.mounts.map((m) => m.source ?? m.target).join(','),
    Names: c.config.name,
    Ports: '',
    RunningFor: `${humanDuration(now - Date.parse(c.config.created))} ago`,
    State: stateWord(c),
    Status: statusText(c, now),
    ExitCode: c.state.exitCode,
  });
}

const PS: Command = {
  spec: {
    name: 'ps',
    usage: '[-a] [-q] [--format json]',
    summary: 'List containers (running ones; -a: all)',
    flags: {
      all: { type: 'boolean', short: 'a', help: 'show all containers (default: running ones)' },
      quiet: { type: 'boolean', short: 'q', help: 'only display container IDs' },
      format: { type: 'string', arg: 'table|json', help: 'output format (json: one object a line)' },
      'no-trunc': { type: 'boolean', help: 'do not truncate output' },
    },
  },
  async run(v) {
    const svc = await open(v);
    const list = await svc.list({ all: Boolean(v.all) });
    const now = Date.now();
    const format = outputFormat(v);
    const id = (c: Container) => (v['no-trunc'] ? c.config.id : shortId(c.config.id));
    if (v.quiet) process.stdout.write(list.map((c) => `${id(c)}\n`).join(''));
    else if (format === 'json') process.stdout.write(list.map((c) => `${psJson(c, now)}\n`).join(''));
    else {
      const rows = [['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES']];
      for (const c of list)
        rows.push([
          id(c),
          c.config.image,
          commandText(c, !v['no-trunc']),
          `${humanDuration(now - Date.parse(c.config.created))} ago`,
          statusText(c, now),
          '',
          c.config.name,
        ]);
      process.stdout.write(table(rows));
    }
    return 0;
  },
};

function printEntry(e: LogEntry, timestamps: boolean): void {
  (e.stream === 'stderr' ? process.stderr : process.stdout).write(timestamps ? `${e.time} ${e.log}` : e.log);
}

const LOGS: Command = {
  spec: {
    name: 'logs',
    usage: '[-f] [--tail N] CONTAINER',
    summary: "Print a container's output (json-lines log kept by its monitor)",
    flags: {
      follow: { type: 'boolean', short: 'f', help: 'follow the output while it runs' },
      tail: { type: 'string', short: 'n', arg: 'N|all', help: 'only the last N lines' },
      timestamps: { type: 'boolean', short: 't', help: 'show timestamps' },
    },
  },
  async run(v, pos) {
    need(this.spec, pos);
    const svc = await open(v);
    const c = await svc.get(pos[0]!);
    const t = str(v.tail);
    const tail = t === undefined || t === 'all' ? undefined : intFlag(t, 'tail');
    const dir = svc.records.path(c.config.id);
    const ts = Boolean(v.timestamps);
    if (!v.follow) {
      for (const e of await readLogs(dir, { tail })) printEntry(e, ts);
      return 0;
    }
    await followLogs(dir, {
      tail,
      onEntry: (e) => printEntry(e, ts),
      isRunning: async () => (await svc.refresh(c.config.id)).state.status === 'running',
      signal: callerGone(),
    });
    return 0;
  },
};

const simple = (
  name: string,
  summary: string,
  usage: string,
  flags: CommandSpec['flags'],
  fn: (svc: ContainerService, ref: string, v: Values) => Promise<void>,
  min = 1,
): Command => ({
  spec: { name, usage, summary, flags },
  async run(v, pos) {
    need(this.spec, pos, min);
    const svc = await open(v);
    return each(pos, (ref) => fn(svc, ref, v));
  },
});

const say = (ref: string) => process.stdout.write(`${ref}\n`);
const TIME = { time: { type: 'string', short: 't', arg: 'SECONDS', help: 'seconds to wait before SIGKILL' } } as const;

export const CONTAINER_VERBS: Record<string, Command> = {
  ps: PS,
  logs: LOGS,
  wait: simple('wait', 'Block until containers stop, then print their exit codes', 'CONTAINER...', {}, async (s, r) => {
    const gone = callerGone();
    const code = await s.wait(r, { signal: gone }).catch((e: unknown) => {
      if (!gone?.aborted) throw e;
    });
    if (code !== undefined) say(String(code));
  }),
  stop: simple(
    'stop',
    'Stop running containers (stop signal, then SIGKILL)',
    '[-t N] CONTAINER...',
    TIME,
    async (s, r, v) => {
      await s.stop(r, { timeout: intFlag(v.time, 'time') });
      say(r);
    },
  ),
  kill: simple(
    'kill',
    'Send a signal (default SIGKILL) to running containers',
    '[-s SIGNAL] CONTAINER...',
    { signal: { type: 'string', short: 's', arg: 'SIGNAL', help: 'signal to send (default KILL)' } },
    async (s, r, v) => {
      await s.kill(r, str(v.signal) ?? 'SIGKILL');
      say(r);
    },
  ),
  restart: simple('restart', 'Restart containers', '[-t N] CONTAINER...', TIME, async (s, r, v) => {
    await s.restart(r, { timeout: intFlag(v.time, 'time') });
    say(r);
  }),
  rename: {
    spec: { name: 'rename', usage: 'CONTAINER NEW_NAME', summary: 'Rename a container', flags: {} },
    async run(v, pos) {
      if (pos.length !== 2) need(this.spec, pos, 2);
      await (await open(v)).rename(pos[0]!, pos[1]!);
      return 0;
    },
  },
  rm: simple(
    'rm',
    'Remove containers',
    '[-f] [-v] CONTAINER...',
    {
      force: { type: 'boolean', short: 'f', help: 'kill a running container first' },
      volumes: { type: 'boolean', short: 'v', help: 'also remove its anonymous volumes' },
    },
    async (s, r, v) => {
      await s.remove(r, { force: Boolean(v.force), volumes: Boolean(v.volumes) });
      say(r);
    },
  ),
  start: {
    spec: {
      name: 'start',
      usage: '[-a] CONTAINER...',
      summary: 'Start stopped containers (same writable layer)',
      flags: { attach: { type: 'boolean', short: 'a', help: 'attach: print its output, exit with its code' } },
    },
    async run(v, pos) {
      need(this.spec, pos);
      const svc = await open(v);
      if (v.attach) {
        if (pos.length > 1) throw new VlabError('E_BAD_ARG', 'you cannot start and attach multiple containers at once');
        const r = await svc.start(pos[0]!, {
          attach: {
            onOutput: (s, c) => (s === 'stdout' ? process.stdout : process.stderr).write(c),
            detachOn: callerGone(),
          },
        });
        return r.exitCode ?? 0;
      }
      return each(pos, async (r) => {
        await svc.start(r);
        say(r);
      });
    },
  },
};

/** `inspect`: a container when one has this name or id, else the image (docker inspect looks at both). */
export function inspectCommand(imageInspect: Command): Command {
  return {
    spec: {
      ...imageInspect.spec,
      usage: 'NAME|ID',
      summary: 'Print a container (docker inspect JSON) or image config',
    },
    async run(v, pos) {
      if (pos.length !== 1) return imageInspect.run(v, pos);
      const svc = await open(v);
      const c = await svc.get(pos[0]!).catch((e: unknown) => {
        if (e instanceof VlabError && e.code === 'E_CONTAINER_NOT_FOUND') return undefined;
        throw e;
      });
      if (!c) return imageInspect.run(v, pos);
      printJson([inspectJson(c, svc.records.path(c.config.id, 'rootfs'))]);
      return 0;
    },
  };
}

const CONTAINER_SUB: Record<string, Command> = {
  ...CONTAINER_VERBS,
  ls: { ...PS, spec: { ...PS.spec, name: 'container ls' } },
  prune: {
    spec: {
      name: 'container prune',
      usage: '[-f]',
      summary: 'Remove all stopped containers',
      flags: { force: { type: 'boolean', short: 'f', help: 'do not prompt (vbuild never does)' } },
    },
    async run(v) {
      const gone = await (await open(v)).prune();
      process.stdout.write(`Deleted Containers:\n${gone.map((id) => `${id}\n`).join('')}\nTotal reclaimed space: 0B\n`);
      return 0;
    },
  },
  inspect: {
    spec: {
      name: 'container inspect',
      usage: 'CONTAINER...',
      summary: 'Print containers as docker inspect',
      flags: {},
    },
    async run(v, pos) {
      const svc = await open(v);
      const out = [];
      for (const ref of pos) {
        const c = await svc.get(ref);
        out.push(inspectJson(c, svc.records.path(c.config.id, 'rootfs')));
      }
      printJson(out);
      return 0;
    },
  },
  cleanup: {
    spec: {
      name: 'container cleanup',
      usage: 'CONTAINER',
      summary: 'Clean up after a container ended (run by its monitor; idempotent)',
      flags: {},
    },
    async run(v, pos) {
      need(this.spec, pos);
      // run by a monitor after the end: the container (or its whole store) may be gone by then,
      // and opening a store would make it again
      if (!existsSync(path.join(str(v.root) ?? defaultStoreRoot(), 'containers', pos[0]!, 'config.json'))) return 0;
      await (await open(v)).cleanup(pos[0]!).catch((e: unknown) => {
        if (!(e instanceof VlabError && e.code === 'E_CONTAINER_NOT_FOUND')) throw e;
      });
      return 0;
    },
  },
};

/** Commands for main.ts: name → spec and argv runner. */
export function containerCommands(): Record<string, { spec: CommandSpec; run: (argv: string[]) => Promise<number> }> {
  const verbs = Object.fromEntries(
    Object.entries(CONTAINER_VERBS).map(([n, c]) => [n, { spec: c.spec, run: (a: string[]) => runCommand(c, a) }]),
  );
  return {
    run: { spec: RUN, run: cmdRun },
    create: { spec: CREATE, run: cmdCreate },
    ...verbs,
    container: group('container', 'Manage containers', CONTAINER_SUB, { run: cmdRun, create: cmdCreate }),
    volume: group('volume', 'Manage volumes', VOLUME_COMMANDS),
  };
}
