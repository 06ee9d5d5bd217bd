/**
 * Docker's ARG/ENV scoping (BK-ref §ARG, §ENV, §Environment replacement):
 *  - ARGs before the first FROM are global: usable in FROM lines only, unless a stage
 *    redeclares them with `ARG NAME` (which imports the global value);
 *  - `--build-arg` overrides a declared ARG's default; undeclared build args are ignored, except
 *    the predefined proxy family, which RUN sees without a declaration (and which never count
 *    for the cache);
 *  - ENV shadows an ARG of the same name; all values of one ENV instruction are expanded with the
 *    scope as it was before the instruction;
 *  - a step "uses" the ARGs its expansion read; RUN uses every ARG in scope (they are in its
 *    environment).
 */
import { VlabError } from '@vlab/errors';
import { processWord, processWords, type LexOptions } from './shell/lex.ts';
import { parseMount } from './instructions/mount.ts';
import type { Dockerfile, Instruction, Stage } from './types.ts';

export const PROXY_ARGS = [
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
];
export const PLATFORM_ARGS = [
  'TARGETPLATFORM',
  'TARGETOS',
  'TARGETARCH',
  'TARGETVARIANT',
  'BUILDPLATFORM',
  'BUILDOS',
  'BUILDARCH',
  'BUILDVARIANT',
  'TARGETSTAGE',
];

const own = (r: Record<string, string>, k: string) => Object.prototype.hasOwnProperty.call(r, k);

/** Values of the global (pre-FROM) ARGs, plus the predefined ones, for expanding FROM lines. */
export function resolveGlobalArgs(
  df: Dockerfile,
  buildArgs: Record<string, string>,
  predefined: Record<string, string> = {},
): Record<string, string> {
  const scope: Record<string, string> = { ...predefined };
  for (const inst of df.globalArgs) {
    for (const a of inst.args) {
      if (own(buildArgs, a.key)) scope[a.key] = buildArgs[a.key];
      else if (a.value !== undefined)
        scope[a.key] = expandAt(a.value, scope, df.escape, { file: df.file, ...inst.range.start });
    }
  }
  return scope;
}

type At = { file?: string; line: number; column: number };

function expandAt(
  word: string,
  env: Record<string, string> | ((n: string) => string | undefined),
  escape: string,
  at: At,
  opts: LexOptions = {},
): string {
  try {
    return processWord(word, env, { escape, ...opts });
  } catch (e) {
    if (e instanceof VlabError) throw new VlabError(e.code, e.message, { location: at, cause: e });
    throw e;
  }
}

/** The FROM line of a stage with the global ARGs substituted. */
export function resolveStageBase(
  df: Dockerfile,
  stage: Stage,
  globalArgs: Record<string, string>,
): { image: string; platform?: string } {
  const at = { file: df.file, ...stage.from.range.start };
  const image = expandAt(stage.base, globalArgs, df.escape, at);
  if (image.trim() === '') {
    throw new VlabError(
      'E_EXPAND',
      `base name (${stage.base}) should not be blank: set the ARG it uses with a default or --build-arg`,
      { location: at },
    );
  }
  const out: { image: string; platform?: string } = { image };
  if (stage.platform !== undefined) out.platform = expandAt(stage.platform, globalArgs, df.escape, at);
  return out;
}

/** A stage by name (case-insensitive) or index. */
export function findStage(df: Dockerfile, ref: string): Stage | undefined {
  const lower = ref.toLowerCase();
  const byName = df.stages.find((s) => s.name === lower);
  if (byName) return byName;
  if (/^\d+$/.test(ref)) return df.stages[Number(ref)];
  return undefined;
}

/** The `--target` stage; the last stage by default. */
export function selectTarget(df: Dockerfile, target?: string): Stage {
  if (target === undefined || target === '') return df.stages[df.stages.length - 1];
  const s = findStage(df, target);
  if (s) return s;
  const names = df.stages.map((x) => x.name).filter((n): n is string => n !== undefined);
  throw new VlabError(
    'E_UNKNOWN_TARGET',
    `target stage "${target}" could not be found; ${names.length ? `stages are: ${names.join(', ')}` : 'no stage has a name'} (or use an index 0..${df.stages.length - 1})`,
    { details: { target, stages: names } },
  );
}

export interface StageScopeOptions {
  globalArgs: Record<string, string>;
  buildArgs: Record<string, string>;
  baseEnv: Record<string, string>;
  escape?: string;
  predefined?: Record<string, string>;
  /** Dockerfile name for error locations. */
  file?: string;
}

export class StageScope {
  private readonly envVars = new Map<string, string>();
  /** Declared ARGs in this stage; undefined value = declared but unset. */
  private readonly args = new Map<string, string | undefined>();
  private readonly escape: string;

  constructor(private readonly opts: StageScopeOptions) {
    this.escape = opts.escape ?? '\\';
    for (const [k, v] of Object.entries(opts.baseEnv)) this.envVars.set(k, v);
  }

  env(): Record<string, string> {
    return Object.fromEntries(this.envVars);
  }

  runEnv(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const k of PROXY_ARGS) if (own(this.opts.buildArgs, k)) out[k] = this.opts.buildArgs[k];
    for (const [k, v] of this.args) if (v !== undefined) out[k] = v;
    for (const [k, v] of this.envVars) out[k] = v;
    return out;
  }

  evaluate<T extends Instruction>(inst: T): { instruction: T; usedArgs: Record<string, string> } {
    const used: Record<string, string> = {};
    const lookup = (name: string): string | undefined => {
      if (this.envVars.has(name)) return this.envVars.get(name);
      const v = this.args.get(name);
      if (v !== undefined) used[name] = v;
      return v;
    };
    const at = { file: this.opts.file, ...inst.range.start };
    const word = (w: string, opts: LexOptions = {}) => expandAt(w, lookup, this.escape, at, opts);
    const words = (w: string) => {
      try {
        return processWords(w, lookup, { escape: this.escape });
      } catch (e) {
        if (e instanceof VlabError) throw new VlabError(e.code, e.message, { location: at, cause: e });
        throw e;
      }
    };
    const opt = (w: string | undefined) => (w === undefined ? undefined : word(w));
    const i = inst as Instruction;
    let out: Instruction;
    switch (i.kind) {
      case 'FROM': {
        const g = { ...(this.opts.predefined ?? {}), ...this.opts.globalArgs };
        out = { ...i, image: expandAt(i.image, g, this.escape, at) };
        if (i.platform !== undefined) out.platform = expandAt(i.platform, g, this.escape, at);
        break;
      }
      case 'COPY':
      case 'ADD': {
        const c = {
          ...i,
          sources: i.sources.map((s) => word(s)),
          dest: word(i.dest),
          exclude: i.exclude.map((s) => word(s)),
        };
        c.heredocs = i.heredocs.map((h) =>
          h.expand ? { ...h, content: word(h.content, { skipProcessQuotes: true }) } : h,
        );
        for (const k of ['from', 'chown', 'chmod', 'checksum'] as const) if (i[k] !== undefined) c[k] = opt(i[k]);
        out = c;
        break;
      }
      case 'ENV':
      case 'LABEL': {
        const pairs = i.pairs.map((p) => ({ key: word(p.key), value: word(p.value) }));
        if (i.kind === 'ENV') for (const p of pairs) this.envVars.set(p.key, p.value);
        out = { ...i, pairs };
        break;
      }
      case 'ARG': {
        const args = i.args.map((a) => {
          let value: string | undefined;
          if (own(this.opts.buildArgs, a.key)) value = this.opts.buildArgs[a.key];
          else if (a.value !== undefined) value = word(a.value);
          else if (own(this.opts.globalArgs, a.key)) value = this.opts.globalArgs[a.key];
          else if (this.opts.predefined && own(this.opts.predefined, a.key)) value = this.opts.predefined[a.key];
          this.args.set(a.key, value);
          return value === undefined ? { key: a.key } : { key: a.key, value };
        });
        out = { ...i, args };
        break;
      }
      case 'EXPOSE':
        out = { ...i, ports: i.ports.flatMap((p) => words(p)) };
        break;
      case 'VOLUME':
        out = { ...i, paths: i.paths.map((p) => word(p)) };
        break;
      case 'WORKDIR':
        out = { ...i, path: word(i.path) };
        break;
      case 'USER':
        out = { ...i, user: word(i.user) };
        break;
      case 'STOPSIGNAL':
        out = { ...i, signal: word(i.signal) };
        break;
      case 'RUN': {
        const raw = Array.isArray(i.flags.mount) ? i.flags.mount : [];
        const mounts = raw.map((m) => parseMount(m, (s) => word(s)));
        for (const [k, v] of this.args) if (v !== undefined && !this.envVars.has(k)) used[k] = v;
        out = { ...i, mounts };
        break;
      }
      default:
        out = i; // CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD, MAINTAINER: not expanded
    }
    return { instruction: out as T, usedArgs: used };
  }
}
