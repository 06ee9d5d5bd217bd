import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { VlabError } from '@vlab/errors';
import { planRunHeredoc, type RunInstruction } from '@vlab/dockerfile';
import type { Executor, ExtraHost, ExtraMount, Limits } from '../../exec/types.ts';
import type { ContainerConfig } from '../../image/types.ts';
import { shellOf } from './meta.ts';
import { DEFAULT_PATH } from '../../exec/defaults.ts';
import { bindSource, type Undo } from './bind-source.ts';
import type { BuildContext } from '../../context/context.ts';

/**
 * argv for a RUN: exec form as written; shell form through SHELL. For heredocs the parser's
 * `planRunHeredoc` says what BuildKit runs; a `#!` body is fed to its interpreter on stdin
 * (`/dev/stdin`), which needs no temp file inside the snapshot (it would show in the layer).
 */
export function runArgv(inst: RunInstruction, config: ContainerConfig): { argv: string[]; stdin?: Buffer } {
  const shell = shellOf(config);
  if (inst.form === 'exec') return { argv: inst.command };
  const plan = planRunHeredoc(inst);
  if (plan.kind === 'none') return { argv: [...shell, inst.command.join(' ')] };
  if (plan.kind === 'script') return { argv: [...shell, plan.script] };
  const body = plan.heredoc.content;
  const interp = body
    .slice(2, body.indexOf('\n') < 0 ? body.length : body.indexOf('\n'))
    .trim()
    .split(/\s+/);
  return { argv: [...interp, '/dev/stdin'], stdin: Buffer.from(body) };
}

/** Where `RUN --mount=…` sources come from. */
export interface MountSources {
  /** Parent of the persistent cache-mount dirs (under the store). */
  cacheRoot: string;
  contextDir: string;
  /** The build context (`contextDir`): what a bind of it shows. */
  context?: BuildContext;
  /** Parent of the throwaway views of `rw` binds (under the store: the same filesystem). */
  scratchDir: string;
  stageRoot?: (from: string) => string | undefined;
  /** Secret id → host file, from the command line (trusted). */
  secrets?: Record<string, string>;
}

/**
 * Run `work` with the mounts of `RUN --mount=…`: cache dirs persist under the store, tmpfs is
 * fresh, a bind is a read-only view of its source inside the context or stage (`rw`: a throwaway
 * one), a secret is its file read-only. The throwaway views are removed after `work`, whatever
 * it did.
 */
export async function withRunMounts<T>(
  inst: RunInstruction,
  from: MountSources,
  work: (mounts: ExtraMount[]) => Promise<T>,
): Promise<T> {
  const undo: Undo = [];
  const release = async () => {
    let failed: unknown;
    for (const u of undo.reverse()) await u().catch((e: unknown) => (failed ??= e));
    if (failed) throw failed;
  };
  let out: T;
  try {
    out = await work(await runMounts(inst, from, undo));
  } catch (e) {
    await release().catch(() => undefined);
    throw e;
  }
  await release();
  return out;
}

async function runMounts(inst: RunInstruction, from: MountSources, undo: Undo): Promise<ExtraMount[]> {
  const out: ExtraMount[] = [];
  for (const m of inst.mounts) {
    const target = m.target ?? '';
    if (m.type === 'tmpfs') {
      out.push({ type: 'tmpfs', target, options: m.size ? [`size=${m.size}`] : [] });
    } else if (m.type === 'cache') {
      // The id is hashed into one name under cacheRoot: it cannot name another path.
      const id = m.id ?? target;
      const dir = path.join(from.cacheRoot, createHash('sha256').update(id).digest('hex').slice(0, 32));
      await fsp.mkdir(dir, { recursive: true });
      out.push({ type: 'bind', source: dir, target, readonly: m.readonly ?? false });
    } else if (m.type === 'bind') {
      const base = m.from ? from.stageRoot?.(m.from) : from.contextDir;
      if (!base) throw new VlabError('E_RUN_MOUNT', `RUN --mount=type=bind,from=${m.from}: unknown stage or image`);
      const rw = m.readonly === false;
      const where = m.from ? `"${m.from}"` : 'the build context';
      out.push({
        type: 'bind',
        source: await bindSource({
          root: base,
          source: m.source ?? '',
          rw,
          where,
          scratch: from.scratchDir,
          undo,
          context: m.from ? undefined : from.context,
        }),
        target,
        readonly: !rw,
      });
    } else if (m.type === 'secret') {
      const id = m.id ?? path.posix.basename(target);
      const file = from.secrets?.[id];
      if (!file) {
        if (m.required)
          throw new VlabError(
            'E_SECRET_MISSING',
            `secret "${id}" is required but was not provided (--secret id=${id},src=…)`,
          );
        continue;
      }
      out.push({
        type: 'bind',
        source: await secretCopy(file, m, from.scratchDir, undo),
        target: target || `/run/secrets/${id}`,
        readonly: true,
      });
    } else {
      throw new VlabError('E_UNSUPPORTED', `RUN --mount=type=${m.type} is not supported`);
    }
  }
  return out;
}

/**
 * The file a secret mount binds: a private copy with the mount's mode and owner (BuildKit: 0400,
 * uid 0, gid 0 unless `mode=`, `uid=`, `gid=` say otherwise), so the user's own file is never
 * chmod'ed. The copy sits in a 0700 dir of its own under `scratch` and is removed after the step.
 */
async function secretCopy(
  file: string,
  m: { mode?: string; uid?: number; gid?: number },
  scratch: string,
  undo: Undo,
): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(scratch, `secret-${process.pid}-`));
  undo.push(() => fsp.rm(dir, { recursive: true, force: true }));
  const copy = path.join(dir, 'secret');
  await fsp.copyFile(file, copy, fsp.constants.COPYFILE_EXCL).catch((e: Error) => {
    throw new VlabError('E_SECRET_MISSING', `secret file ${file} cannot be read: ${e.message}`, { cause: e });
  });
  await fsp.chown(copy, m.uid ?? 0, m.gid ?? 0);
  await fsp.chmod(copy, m.mode ? parseInt(m.mode, 8) : 0o400);
  return copy;
}

export interface RunStepInput {
  executor: Executor;
  rootfs: string;
  inst: RunInstruction;
  config: ContainerConfig;
  env: Record<string, string>;
  mounts: ExtraMount[];
  extraHosts?: ExtraHost[];
  limits?: Limits;
  signal?: AbortSignal;
  onOutput: (stream: 'stdout' | 'stderr', data: string) => void;
}

/** Run one RUN step in an isolated container; failure → E_RUN_FAILED / E_RUN_OOM with the output tail. */
export async function runStep(i: RunStepInput): Promise<void> {
  const { argv, stdin } = runArgv(i.inst, i.config);
  const env = { ...i.env };
  env.PATH ??= DEFAULT_PATH;
  const tail: string[] = [];
  const res = await i.executor.run(
    {
      rootfs: i.rootfs,
      argv,
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: i.config.WorkingDir || '/',
      user: i.config.User || undefined,
      hostname: 'buildkitsandbox',
      network: i.inst.network === 'host' ? 'host' : 'none',
      mounts: i.mounts,
      extraHosts: i.extraHosts,
      limits: i.limits,
    },
    {
      signal: i.signal,
      stdin,
      onOutput: (stream, chunk) => {
        const text = chunk.toString();
        tail.push(...text.split('\n').filter(Boolean));
        if (tail.length > 20) tail.splice(0, tail.length - 20);
        i.onOutput(stream, text);
      },
    },
  );
  const cmd = argv.join(' ');
  if (res.oomKilled) {
    throw new VlabError(
      'E_RUN_OOM',
      `RUN ${cmd} was killed: out of memory${i.limits?.memory ? ` (limit ${i.limits.memory} bytes)` : ''}`,
      { details: { tail } },
    );
  }
  if (res.exitCode !== 0) {
    const last = tail
      .slice(-5)
      .map((l) => `  ${l}`)
      .join('\n');
    throw new VlabError(
      'E_RUN_FAILED',
      `RUN ${cmd} failed with exit code ${res.exitCode}${res.signal ? ` (${res.signal})` : ''}${last ? `:\n${last}` : ''}`,
      {
        details: { exitCode: res.exitCode, tail },
      },
    );
  }
}
