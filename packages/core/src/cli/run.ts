/**
 * `vbuild run` and `vbuild create`: docker's flags into CreateOptions. Exit codes as docker run:
 * the container's own in the foreground; 125 when vbuild could not run it (bad flag, unknown
 * image, name in use…); 126/127 come from the launcher (not executable / not found).
 */
import { VlabError } from '@vlab/errors';
import { readEnvFile, type CreateOptions } from '../index.ts';
import { intFlag, keyValues, list, parseCommand, str, type CommandSpec, type Values } from './flags.ts';
import { callerGone } from './client.ts';
import { formatError } from './snippet.ts';
import { openService } from './service.ts';

const CREATE_FLAGS: CommandSpec['flags'] = {
  name: { type: 'string', arg: 'NAME', help: 'assign a name to the container' },
  env: { type: 'string', short: 'e', multiple: true, arg: 'K=V', help: 'set an environment variable' },
  'env-file': { type: 'string', multiple: true, arg: 'FILE', help: 'read environment variables from a file' },
  workdir: { type: 'string', short: 'w', arg: 'DIR', help: 'working directory inside the container' },
  user: { type: 'string', short: 'u', arg: 'USER[:GROUP]', help: 'user name or uid (and group)' },
  entrypoint: { type: 'string', arg: 'CMD', help: "overwrite the image's ENTRYPOINT ('' clears it)" },
  hostname: { type: 'string', arg: 'NAME', help: 'container host name (default: the short id)' },
  'read-only': { type: 'boolean', help: "mount the container's root filesystem read-only" },
  memory: { type: 'string', short: 'm', arg: 'SIZE', help: 'memory limit (at least 6m)' },
  cpus: { type: 'string', arg: 'N', help: 'number of CPUs (e.g. 1.5)' },
  'pids-limit': { type: 'string', arg: 'N', help: 'process limit (-1: unlimited)' },
  'stop-signal': { type: 'string', arg: 'SIGNAL', help: 'signal to stop the container (default SIGTERM)' },
  'stop-timeout': { type: 'string', arg: 'SECONDS', help: 'seconds stop waits before SIGKILL (default 10)' },
  volume: { type: 'string', short: 'v', multiple: true, arg: 'SRC:DST[:ro]', help: 'bind mount or volume' },
  mount: { type: 'string', multiple: true, arg: 'type=…,target=…', help: 'bind, volume or tmpfs mount' },
  tmpfs: { type: 'string', multiple: true, arg: 'DST[:OPTS]', help: 'mount a tmpfs' },
  network: {
    type: 'string',
    arg: 'none|host|private',
    help: 'network (default none; private: own, with outbound NAT)',
  },
  publish: { type: 'string', short: 'p', multiple: true, arg: 'HOST:CTR', help: 'publish a port (network private)' },
  tty: { type: 'boolean', short: 't', help: 'allocate a pseudo-TTY' },
  label: { type: 'string', short: 'l', multiple: true, arg: 'K=V', help: 'set metadata on the container' },
  'log-opt': { type: 'string', multiple: true, arg: 'max-size=SIZE', help: 'log option (max-size only)' },
  rm: { type: 'boolean', help: 'remove the container when it exits' },
};

export const RUN: CommandSpec = {
  name: 'run',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  summary: 'Create and run a new container from an image',
  flags: {
    detach: { type: 'boolean', short: 'd', help: 'run in the background and print the container ID' },
    interactive: { type: 'boolean', short: 'i', help: "keep STDIN open: the container reads vbuild's stdin" },
    ...CREATE_FLAGS,
  },
};

export const CREATE: CommandSpec = {
  name: 'create',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  summary: 'Create a new container (start it with vbuild start)',
  flags: CREATE_FLAGS,
};

/**
 * Docker's rule: flags end at the image; everything after it is the command (`run busybox ls -l`).
 * Returns the flag part and the rest.
 */
export function splitAtImage(spec: CommandSpec, argv: string[]): { flags: string[]; rest: string[] } {
  const byShort = new Map(Object.entries(spec.flags).map(([k, f]) => [f.short, k]));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return { flags: argv.slice(0, i), rest: argv.slice(i + 1) };
    if (!a.startsWith('-') || a === '-') return { flags: argv.slice(0, i), rest: argv.slice(i) };
    if (a.startsWith('--')) {
      const name = a.slice(2).split('=')[0]!;
      if (!a.includes('=') && (spec.flags[name]?.type === 'string' || name === 'root')) i++;
      continue;
    }
    // short flags: booleans may be grouped (-dit); a string flag takes the rest, or the next word
    for (let j = 1; j < a.length; j++) {
      const f = spec.flags[byShort.get(a[j]!) ?? ''];
      if (f?.type === 'string') {
        if (j === a.length - 1) i++;
        break;
      }
    }
  }
  return { flags: argv, rest: [] };
}

export async function createOptions(v: Values, rest: string[]): Promise<CreateOptions> {
  const [image, ...cmd] = rest;
  if (!image) throw new VlabError('E_BAD_ARG', `"vbuild run" requires at least 1 argument: IMAGE [COMMAND] [ARG...]`);
  const env: string[] = [];
  for (const f of list(v['env-file'])) env.push(...(await readEnvFile(f)));
  env.push(...list(v.env));
  const network = str(v.network);
  if (network !== undefined && network !== 'none' && network !== 'host' && network !== 'private')
    throw new VlabError('E_BAD_ARG', `--network must be none, host or private, got "${network}"`);
  let logMaxSize: string | undefined;
  for (const o of list(v['log-opt'])) {
    const m = /^max-size=(.+)$/.exec(o);
    if (!m) throw new VlabError('E_BAD_ARG', `unknown log opt '${o}' (only max-size=SIZE)`);
    logMaxSize = m[1];
  }
  const entrypoint = str(v.entrypoint);
  return {
    image,
    cmd,
    entrypoint: entrypoint === undefined ? undefined : entrypoint === '' ? [] : [entrypoint],
    name: str(v.name),
    env,
    workingDir: str(v.workdir),
    user: str(v.user),
    hostname: str(v.hostname),
    readonlyRootfs: Boolean(v['read-only']),
    memory: str(v.memory),
    cpus: str(v.cpus),
    pidsLimit: intFlag(v['pids-limit'], 'pids-limit'),
    stopSignal: str(v['stop-signal']),
    stopTimeout: intFlag(v['stop-timeout'], 'stop-timeout'),
    autoRemove: Boolean(v.rm),
    volumes: list(v.volume),
    mounts: list(v.mount),
    tmpfs: list(v.tmpfs),
    network: network as CreateOptions['network'],
    publish: list(v.publish),
    tty: v.tty ? { rows: process.stdout.rows, cols: process.stdout.columns } : undefined,
    labels: keyValues(list(v.label)),
    logMaxSize,
  };
}

/** Errors before the container runs are docker's 125, printed as vbuild prints errors. */
async function as125(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof VlabError)) throw e;
    process.stderr.write(formatError(e));
    return 125;
  }
}

export function cmdRun(argv: string[]): Promise<number> {
  return as125(async () => {
    const { flags, rest } = splitAtImage(RUN, argv);
    const p = parseCommand(RUN, flags);
    if (!p) return 0;
    if (p.positionals.length) rest.unshift(...p.positionals);
    const v = p.values;
    const opts = await createOptions(v, rest);
    const svc = await openService(v);
    if (v.detach) {
      if (v.rm && v.interactive) throw new VlabError('E_BAD_ARG', 'conflicting options: -i needs the foreground');
      const { container } = await svc.run(opts);
      process.stdout.write(`${container.config.id}\n`);
      return 0;
    }
    // docker's sig-proxy: SIGINT/SIGTERM/SIGHUP to the CLI go to the container's pid 1. The handlers
    // are in place before the container starts (its first output can come before onStarted), and a
    // signal that arrives before then is delivered once it runs.
    let started: string | undefined;
    const pending: NodeJS.Signals[] = [];
    const forward = (id: string, sig: NodeJS.Signals) => void svc.kill(id, sig).catch(() => undefined);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
      process.on(sig, () => (started ? forward(started, sig) : pending.push(sig)));
    const r = await svc.run(opts, {
      attach: {
        onOutput: (s, c) => (s === 'stdout' ? process.stdout : process.stderr).write(c),
        stdinFd: v.interactive ? 0 : undefined,
        detachOn: callerGone(),
        onStarted: (id) => {
          started = id;
          for (const sig of pending.splice(0)) forward(id, sig);
        },
      },
    });
    return r.exitCode ?? 0;
  });
}

export function cmdCreate(argv: string[]): Promise<number> {
  return as125(async () => {
    const { flags, rest } = splitAtImage(CREATE, argv);
    const p = parseCommand(CREATE, flags);
    if (!p) return 0;
    const svc = await openService(p.values);
    const c = await svc.create(await createOptions(p.values, [...p.positionals, ...rest]));
    process.stdout.write(`${c.config.id}\n`);
    return 0;
  });
}
